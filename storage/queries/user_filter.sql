-- The filters of the users list (docs/api.md, GET …/users), a fragment of users_walk and
-- users_export: an empty list or -1 matches everything. The usage rule is the one of
-- utilisation.sql (T = @threshold, @covered), for license holders only.
(@statuses = '' OR has(splitByChar(',', @statuses), status))
AND (@license_types = '' OR has(splitByChar(',', @license_types), license_type))
AND (@service_account = -1 OR service_account = @service_account)
AND (@licensed = -1 OR (status = 'active' AND service_account = 0) = @licensed)
AND (@usages = '' OR has(splitByChar(',', @usages),
     multiIf(NOT (status = 'active' AND service_account = 0), '',
             ifNull(last_activity_at, toDateTime(0, 'UTC')) >= toDateTime(@threshold, 'UTC'), 'active',
             @covered = 1 AND created_at < toDateTime(@threshold, 'UTC'), 'inactive',
             'unknown')))
AND (@q = '' OR positionCaseInsensitiveUTF8(name, @q) > 0 OR positionCaseInsensitiveUTF8(email, @q) > 0)
