-- The usage counts of the last snapshot in each bucket (day, ISO week from Monday, or month,
-- UTC) with ts in [from, to), per license type.
-- Of the rows of a key (a snapshot written again at one ts), the last written (version) is
-- kept.
SELECT ts, license_type, users, licenses, active, inactive, exempt, unknown
FROM {db}.usage_counts FINAL
WHERE tenant_id = @tenant AND app = @app
  AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
  AND ts IN (
    SELECT max(ts)
    FROM {db}.usage_counts
    WHERE tenant_id = @tenant AND app = @app
      AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
    GROUP BY multiIf(@bucket = 'day', toDate(ts), @bucket = 'week', toMonday(ts), toStartOfMonth(ts))
  )
ORDER BY ts, license_type, version DESC
LIMIT 1 BY ts, license_type
