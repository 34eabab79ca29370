-- 0005_buffers: Buffer tables in front of the three small tables every run writes to
-- (docs/schema.md, "Buffers"). Same rules as 0001: every statement idempotent, engine syntax
-- that ClickHouse 18.16 and current releases share.
--
-- Every run adds a few rows to sync_runs, and every users sync to license_counts and
-- usage_counts. Written straight into these small one-partition tables, each INSERT made a
-- part that ClickHouse merged into the whole table at once: at 1,000 tenants on 1m/30s about
-- eleven whole-table merges a second (docs/performance.md). A Buffer table keeps the rows in
-- memory, answers reads with them and the destination's rows together, and writes them to the
-- destination as one part every 5 seconds (or at 100,000 rows or 16 MiB). The collector writes
-- and reads through these; a later ALTER of a destination table must ALTER its buffer too.
--
-- FINAL merges the destination's parts only, not what the buffer holds, so the readers pick
-- one row per key themselves (LIMIT 1 BY). For the two snapshot tables, where a snapshot
-- written again with the same ts replaces the earlier one, the write time in ns (version;
-- 0 for rows written before this migration) says which row is the later.
ALTER TABLE {db}.license_counts ADD COLUMN IF NOT EXISTS version UInt64;
ALTER TABLE {db}.usage_counts ADD COLUMN IF NOT EXISTS version UInt64;

CREATE TABLE IF NOT EXISTS {db}.sync_runs_buffer AS {db}.sync_runs
ENGINE = Buffer({db}, sync_runs, 1, 5, 5, 100000, 100000, 16777216, 16777216);

CREATE TABLE IF NOT EXISTS {db}.license_counts_buffer AS {db}.license_counts
ENGINE = Buffer({db}, license_counts, 1, 5, 5, 100000, 100000, 16777216, 16777216);

CREATE TABLE IF NOT EXISTS {db}.usage_counts_buffer AS {db}.usage_counts
ENGINE = Buffer({db}, usage_counts, 1, 5, 5, 100000, 100000, 16777216, 16777216);
