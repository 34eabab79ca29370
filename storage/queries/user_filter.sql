-- The filters of the users list (docs/api.md, GET …/users), a fragment of users_walk and
-- users_export: an empty list or -1 matches everything. Licensed and usage are the usage
-- rule's ({licensed}, {usage}: storage/usage.go), usage for license holders only; exempt is
-- usage exempt (true) or anything else (false).
(@statuses = '' OR has(splitByChar(',', @statuses), status))
AND (@license_types = '' OR has(splitByChar(',', @license_types), license_type))
AND (@service_account = -1 OR service_account = @service_account)
AND (@licensed = -1 OR {licensed} = @licensed)
AND (@usages = '' OR has(splitByChar(',', @usages), {usage}))
AND (@exempt = -1 OR ({usage} = {usage_exempt}) = @exempt)
AND (@q = '' OR positionCaseInsensitiveUTF8(name, @q) > 0 OR positionCaseInsensitiveUTF8(email, @q) > 0)
