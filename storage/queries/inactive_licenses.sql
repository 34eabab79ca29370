-- Inactive licenses (docs/schema.md, "The usage rule"): the licenses {usage} classifies
-- inactive, with {reason} (storage/usage.go). Never-active users first, then the oldest
-- activity.
SELECT user_id, name, email, license_type, created_at, last_activity_at, last_activity_type,
       {reason} AS reason
FROM {db}.users FINAL
WHERE tenant_id = @tenant AND app = @app
  AND {usage} = {usage_inactive}
ORDER BY isNull(last_activity_at) DESC, ifNull(last_activity_at, toDateTime(0, 'UTC')), user_id
