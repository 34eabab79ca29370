-- One user's daily activity for the UTC days in [from_day, to_day), deduplicated.
SELECT day, events, last_event_at
FROM {db}.user_activity_daily FINAL
WHERE tenant_id = @tenant AND app = @app AND user_id = @user
  AND day >= toDate(@from_day) AND day < toDate(@to_day)
ORDER BY day
