-- Records the usage counts of a tenant at a users sync (usage_counts): per license type, the
-- users (removed ones left out), the licenses among them ({licensed}) and how many of those
-- the usage rule ({usage}: storage/usage.go) classifies active, inactive and unknown. The
-- collector runs the SELECT and writes its rows through a group-committed writer (one INSERT
-- for many tenants; RecordUsageCounts); the compatibility test runs the whole statement.
INSERT INTO {db}.usage_counts (tenant_id, app, ts, license_type, users, licenses, active, inactive, unknown)
SELECT @tenant, @app, toDateTime(@ts, 'UTC'), license_type,
       toUInt32(count()),
       toUInt32(countIf({licensed})),
       toUInt32(countIf({usage} = {usage_active})),
       toUInt32(countIf({usage} = {usage_inactive})),
       toUInt32(countIf({licensed} AND {usage} NOT IN ({usage_active}, {usage_inactive})))
FROM {db}.users FINAL
WHERE tenant_id = @tenant AND app = @app AND status != 'removed'
GROUP BY license_type
