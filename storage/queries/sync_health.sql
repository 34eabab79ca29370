-- The latest sync runs, newest first.
-- FINAL keeps one row of a key (a retried INSERT writes it again); LIMIT 1 BY the key as well,
-- as when the table was read through a Buffer table (docs/schema.md, "Buffers, and why
-- they went").
SELECT run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message
FROM {db}.sync_runs FINAL
WHERE tenant_id = @tenant AND app = @app
ORDER BY started_at DESC, run_id DESC
LIMIT 1 BY started_at, run_id
LIMIT @limit
