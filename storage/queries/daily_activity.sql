-- Daily activity per user for the UTC days overlapping [from, to), deduplicated.
SELECT user_id, day, events, last_event_at
FROM {db}.user_activity_daily FINAL
WHERE tenant_id = @tenant AND app = @app
  AND day >= toDate(@from_day) AND day < toDate(@to_day)
ORDER BY day, user_id
