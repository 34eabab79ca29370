-- 0002_read_api: the history the read API serves (docs/schema.md). Same rules as 0001: every
-- statement idempotent, types and engine syntax that ClickHouse 18.16 and current releases
-- share, every DateTime in UTC.

-- One row per revision of a user: the state the users sync derived when the user changed
-- (written with its saas.user.changed event). users keeps only the newest version after
-- merges; this table keeps every revision. A replayed change has the same key and replaces
-- itself (the highest version, the sync's start in ns, wins).
CREATE TABLE IF NOT EXISTS {db}.user_changes (
    tenant_id String,
    app String,
    user_id Int64,
    revision UInt32,
    changed_at DateTime('UTC'),
    changed String,
    status String,
    license_type String,
    site_admin UInt8,
    service_account UInt8,
    name String,
    email String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, app, user_id, revision);

-- Usage counts per users sync and license type: the time series of licenses, active,
-- inactive and unknown behind GET …/trends. A replayed snapshot (same ts) replaces itself.
CREATE TABLE IF NOT EXISTS {db}.usage_counts (
    tenant_id String,
    app String,
    ts DateTime('UTC'),
    license_type String,
    users UInt32,
    licenses UInt32,
    active UInt32,
    inactive UInt32,
    unknown UInt32
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, app, ts, license_type);
