-- The outcomes of one action, by user id: the actions table's rows (docs/schema.md).
SELECT user_id, type, requested_by, reason, requested_at, dry_run, force, outcome, code, http_status,
       guards, license_type, last_activity_at, decided_at
FROM {db}.actions FINAL
WHERE tenant_id = @tenant AND app = @app AND action_id = @action
ORDER BY user_id
