-- License counts over time: one row per sync snapshot, license type and status, ts in [from, to).
SELECT ts, license_type, status, users
FROM {db}.license_counts FINAL
WHERE tenant_id = @tenant AND app = @app
  AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
ORDER BY ts, license_type, status
