-- The latest sync runs, newest first.
-- Read through the Buffer table (docs/schema.md, "Buffers"): FINAL merges the stored parts
-- only, so LIMIT 1 BY the key drops a row the buffer holds again (a retried INSERT).
SELECT run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message
FROM {db}.sync_runs_buffer FINAL
WHERE tenant_id = @tenant AND app = @app
ORDER BY started_at DESC, run_id DESC
LIMIT 1 BY started_at, run_id
LIMIT @limit
