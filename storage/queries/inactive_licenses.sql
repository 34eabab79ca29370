-- Inactive licenses (PRODUCT.md 3): active, non-service users with no activity since the
-- threshold T = now - inactive_after_days, created before T, and only when the Audit Log is
-- known complete from at or before T (@covered). Never-active users first, then the oldest
-- activity.
SELECT user_id, name, email, license_type, created_at, last_activity_at, last_activity_type,
       if(isNull(last_activity_at), 'never_active', 'no_recent_activity') AS reason
FROM {db}.users FINAL
WHERE tenant_id = @tenant AND app = @app
  AND status = 'active' AND service_account = 0
  AND ifNull(last_activity_at, toDateTime(0, 'UTC')) < toDateTime(@threshold, 'UTC')
  AND created_at < toDateTime(@threshold, 'UTC')
  AND @covered = 1
ORDER BY isNull(last_activity_at) DESC, ifNull(last_activity_at, toDateTime(0, 'UTC')), user_id
