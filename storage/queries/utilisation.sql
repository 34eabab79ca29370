-- Utilisation per license type: users (not removed), licenses (active, non-service users) and
-- how many of those are active (activity at or after T) or inactive (no activity since T,
-- created before T, Audit Log complete since at or before T); the rest are unknown.
SELECT license_type,
       count() AS n_users,
       countIf(licensed) AS n_licenses,
       countIf(licensed AND active) AS n_active,
       countIf(licensed AND NOT active AND judgeable) AS n_inactive
FROM (
    SELECT license_type,
           (status = 'active' AND service_account = 0) AS licensed,
           (ifNull(last_activity_at, toDateTime(0, 'UTC')) >= toDateTime(@threshold, 'UTC')) AS active,
           (@covered = 1 AND created_at < toDateTime(@threshold, 'UTC')) AS judgeable
    FROM {db}.users FINAL
    WHERE tenant_id = @tenant AND app = @app AND status != 'removed'
)
GROUP BY license_type
ORDER BY license_type
