-- 0003_policy: the tenants' license policies (docs/schema.md). Same rules as 0001: every
-- statement idempotent (ADD COLUMN IF NOT EXISTS is run as a plain ADD COLUMN when the column
-- is missing, which 18.16 needs), types and engine syntax that ClickHouse 18.16 and current
-- releases share, every DateTime in UTC.

-- When a user's first license began (the grace period's start): the creation of a user
-- licensed when first listed, or the users sync that first found the user licensed.
ALTER TABLE {db}.users ADD COLUMN IF NOT EXISTS licensed_at Nullable(DateTime('UTC'));

-- The policy's figures in each usage snapshot: exempt licenses, and per license type the
-- seats bought, those unassigned and what inactive and unassigned seats cost a year, in
-- minor units of currency (NULL where the policy leaves it unset: unknown, never zero), under
-- the policy revision then in force (0: none).
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS exempt UInt32;
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS policy_revision UInt32;
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS seats_purchased Nullable(UInt32);
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS unassigned Nullable(UInt32);
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS currency String;
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS annual_cost Nullable(Int64);
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS inactive_cost Nullable(Int64);
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS unassigned_cost Nullable(Int64);

-- Every revision of a tenant's policy: who changed it, when, which fields, the whole policy
-- after the change (JSON), and its terms per license type in parallel arrays (-1 where
-- unset) so that past figures can be recomputed in SQL. A replayed change has the same key
-- and replaces itself.
CREATE TABLE IF NOT EXISTS {db}.policy_changes (
    tenant_id String,
    app String,
    revision UInt32,
    changed_at DateTime('UTC'),
    changed_by String,
    changed String,
    policy String,
    license_types Array(String),
    seats_purchased Array(Int64),
    annual_costs Array(Int64),
    currencies Array(String),
    inactive_after_days Array(UInt16)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, app, revision);
