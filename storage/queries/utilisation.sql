-- Utilisation (docs/schema.md, "The usage rule"): per license type, status and service
-- account, the users stored (removed ones included), the licenses among them ({licensed}) and
-- how many of those {usage} classifies active, inactive and exempt (storage/usage.go); the
-- rest are unknown.
SELECT license_type, status, service_account,
       count() AS n_users,
       countIf({licensed}) AS n_licenses,
       countIf({usage} = {usage_active}) AS n_active,
       countIf({usage} = {usage_inactive}) AS n_inactive,
       countIf({usage} = {usage_exempt}) AS n_exempt
FROM {db}.users FINAL
WHERE tenant_id = @tenant AND app = @app
GROUP BY license_type, status, service_account
ORDER BY license_type, status, service_account
