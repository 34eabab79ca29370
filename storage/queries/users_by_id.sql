-- The current rows of the given users ({ids}, integers formatted by the caller), each with
-- its active days since @since_day (days of user_activity_daily with events). Both
-- subqueries carry an alias: current releases refuse a JOIN of unaliased subqueries
-- (code 206, ALIAS_REQUIRED; docs/schema.md).
SELECT tenant_id, app, user_id, name, email, status, license_type, site_admin, service_account,
       created_at, updated_at, first_seen_at, last_seen_at, removed_at, last_activity_at, last_activity_type,
       revision, version, licensed_at, active_days
FROM (
    SELECT *
    FROM {db}.users FINAL
    WHERE tenant_id = @tenant AND app = @app AND user_id IN ({ids})
) AS current_users
ANY LEFT JOIN (
    SELECT user_id, toUInt32(count()) AS active_days
    FROM {db}.user_activity_daily FINAL
    WHERE tenant_id = @tenant AND app = @app AND user_id IN ({ids})
      AND day >= toDate(@since_day) AND events > 0
    GROUP BY user_id
) AS activity USING user_id
