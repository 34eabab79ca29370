-- License counts over time: one row per sync snapshot, license type and status, ts in [from, to).
-- Read through the Buffer table (docs/schema.md, "Buffers"): FINAL merges the stored parts
-- only, so of the rows of a key the buffer and the parts hold, the last written (version)
-- is kept.
SELECT ts, license_type, status, users
FROM {db}.license_counts_buffer FINAL
WHERE tenant_id = @tenant AND app = @app
  AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
ORDER BY ts, license_type, status, version DESC
LIMIT 1 BY ts, license_type, status
