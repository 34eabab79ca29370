-- License counts over time: one row per sync snapshot, license type and status, ts in [from, to).
-- Of the rows of a key (a snapshot written again at one ts), the last written (version) is
-- kept.
SELECT ts, license_type, status, users
FROM {db}.license_counts FINAL
WHERE tenant_id = @tenant AND app = @app
  AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
ORDER BY ts, license_type, status, version DESC
LIMIT 1 BY ts, license_type, status
