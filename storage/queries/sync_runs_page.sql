-- A page of sync runs, newest first, after the position (@after_ts, @after_run) of the
-- previous page's last run (@after = 1), optionally of one kind and status; @limit 0: all.
-- Read through the Buffer table (docs/schema.md, "Buffers"): FINAL merges the stored parts
-- only, so LIMIT 1 BY the key drops a row the buffer holds again (a retried INSERT).
SELECT run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message
FROM {db}.sync_runs_buffer FINAL
WHERE tenant_id = @tenant AND app = @app
  AND (@kind = '' OR kind = @kind)
  AND (@status = '' OR status = @status)
  AND (@after = 0 OR started_at < toDateTime(@after_ts, 'UTC')
       OR (started_at = toDateTime(@after_ts, 'UTC') AND run_id < @after_run))
ORDER BY started_at DESC, run_id DESC
LIMIT 1 BY started_at, run_id
{limit}
