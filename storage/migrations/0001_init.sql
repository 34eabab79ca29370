-- 0001_init: the tables of PRODUCT.md 4.3. Every statement is idempotent (IF NOT EXISTS), so a
-- migration interrupted half-way, or run by two replicas at once, converges.
-- Engine syntax (ENGINE = … PARTITION BY … ORDER BY …) and types are chosen to work on
-- ClickHouse 18.16 and on current releases: no LowCardinality, TTL, DateTime64, CODEC.
-- Every DateTime is DateTime('UTC') so the server's time zone never shifts a value.

-- Current state per user; the row with the highest version wins (FINAL / argMax).
CREATE TABLE IF NOT EXISTS {db}.users (
    tenant_id String,
    app String,
    user_id Int64,
    name String,
    email String,
    status String,
    license_type String,
    site_admin UInt8,
    service_account UInt8,
    created_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    first_seen_at DateTime('UTC'),
    last_seen_at DateTime('UTC'),
    removed_at Nullable(DateTime('UTC')),
    last_activity_at Nullable(DateTime('UTC')),
    last_activity_type String,
    revision UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, app, user_id);

-- License counts per sync: a replayed snapshot (same ts) replaces itself.
CREATE TABLE IF NOT EXISTS {db}.license_counts (
    tenant_id String,
    app String,
    ts DateTime('UTC'),
    license_type String,
    status String,
    users UInt32
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, app, ts, license_type, status);

-- Every Audit Log event once: event_id is a hash of the event, event_time is in the key, so
-- a re-read event lands on the same key in the same partition and merges away.
CREATE TABLE IF NOT EXISTS {db}.audit_events (
    tenant_id String,
    event_id String,
    event_time DateTime('UTC'),
    event_type String,
    target_type String,
    target_id String,
    performer_type String,
    performer_id String,
    performer_name String,
    performer_email String,
    performer_ip String,
    request_id String,
    request_type String,
    meta String,
    ingested_at DateTime('UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant_id, event_time, event_id);

-- Per user and UTC day, recomputed from audit_events; the newest computation (version = write
-- time in ns) wins.
CREATE TABLE IF NOT EXISTS {db}.user_activity_daily (
    tenant_id String,
    app String,
    user_id Int64,
    day Date,
    events UInt32,
    last_event_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, app, user_id, day);

-- One row per sync run.
CREATE TABLE IF NOT EXISTS {db}.sync_runs (
    tenant_id String,
    app String,
    run_id String,
    kind String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    status String,
    users UInt32,
    events UInt32,
    requests UInt32,
    throttled UInt32,
    error_code String,
    error_message String
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, app, started_at, run_id);

-- The history of connection states and check results.
CREATE TABLE IF NOT EXISTS {db}.connection_events (
    tenant_id String,
    app String,
    ts DateTime('UTC'),
    event_id String,
    state String,
    usage_data UInt8,
    checks String,
    changed String
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, app, ts, event_id);
