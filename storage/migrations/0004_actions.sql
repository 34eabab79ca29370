-- 0004_actions: reclaim actions on the record (docs/schema.md, "actions"). Same rules as 0001:
-- every statement idempotent, types and engine syntax that ClickHouse 18.16 and current
-- releases share, every DateTime in UTC.

-- One row per user of an action: who asked, what, when, the outcome and Greenhouse's answer,
-- and the user's license type and last activity before the action. Rows are only ever
-- inserted; a row written again after a crash (the same action and user) replaces itself.
CREATE TABLE IF NOT EXISTS {db}.actions (
    tenant_id String,
    app String,
    action_id String,
    user_id Int64,
    type String,
    requested_by String,
    reason String,
    requested_at DateTime('UTC'),
    dry_run UInt8,
    force UInt8,
    outcome String,
    code String,
    http_status UInt16,
    guards String,
    license_type String,
    last_activity_at Nullable(DateTime('UTC')),
    decided_at DateTime('UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested_at)
ORDER BY (tenant_id, app, action_id, user_id);
