-- The usage counts of the last snapshot in each bucket (day, ISO week from Monday, or month,
-- UTC) with ts in [from, to), per license type.
-- Read through the Buffer table (docs/schema.md, "Buffers"): FINAL merges the stored parts
-- only, so of the rows of a key the buffer and the parts hold, the last written (version)
-- is kept.
SELECT ts, license_type, users, licenses, active, inactive, exempt, unknown
FROM {db}.usage_counts_buffer FINAL
WHERE tenant_id = @tenant AND app = @app
  AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
  AND ts IN (
    SELECT max(ts)
    FROM {db}.usage_counts_buffer
    WHERE tenant_id = @tenant AND app = @app
      AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
    GROUP BY multiIf(@bucket = 'day', toDate(ts), @bucket = 'week', toMonday(ts), toStartOfMonth(ts))
  )
ORDER BY ts, license_type, version DESC
LIMIT 1 BY ts, license_type
