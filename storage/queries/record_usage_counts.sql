-- Records the usage counts of a tenant at a users sync (usage_counts), with the rule of
-- utilisation.sql.
INSERT INTO {db}.usage_counts (tenant_id, app, ts, license_type, users, licenses, active, inactive, unknown)
SELECT @tenant, @app, toDateTime(@ts, 'UTC'), license_type,
       toUInt32(count()),
       toUInt32(countIf(licensed)),
       toUInt32(countIf(licensed AND active)),
       toUInt32(countIf(licensed AND NOT active AND judgeable)),
       toUInt32(countIf(licensed AND NOT active AND NOT judgeable))
FROM (
    SELECT license_type,
           (status = 'active' AND service_account = 0) AS licensed,
           (ifNull(last_activity_at, toDateTime(0, 'UTC')) >= toDateTime(@threshold, 'UTC')) AS active,
           (@covered = 1 AND created_at < toDateTime(@threshold, 'UTC')) AS judgeable
    FROM {db}.users FINAL
    WHERE tenant_id = @tenant AND app = @app AND status != 'removed'
)
GROUP BY license_type
