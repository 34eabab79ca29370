-- The latest sync runs, newest first.
SELECT run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message
FROM {db}.sync_runs FINAL
WHERE tenant_id = @tenant AND app = @app
ORDER BY started_at DESC, run_id DESC
LIMIT @limit
