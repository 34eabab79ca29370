-- Distinct audit events stored for a tenant.
SELECT uniqExact(event_id)
FROM {db}.audit_events
WHERE tenant_id = @tenant
