-- Top users by distinct audit events over the UTC days overlapping [from, to), with their
-- current name and email. Both subqueries carry an alias: current releases refuse a JOIN of
-- unaliased subqueries (code 206, ALIAS_REQUIRED); 18.16 takes either (docs/schema.md).
SELECT user_id, name, email, events, last_event_at
FROM (
    SELECT user_id, sum(events) AS events, max(last_event_at) AS last_event_at
    FROM {db}.user_activity_daily FINAL
    WHERE tenant_id = @tenant AND app = @app
      AND day >= toDate(@from_day) AND day < toDate(@to_day)
    GROUP BY user_id
) AS activity
ANY LEFT JOIN (
    SELECT user_id, name, email
    FROM {db}.users FINAL
    WHERE tenant_id = @tenant AND app = @app
) AS current_users USING user_id
ORDER BY events DESC, user_id
LIMIT @limit
