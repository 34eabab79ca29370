-- A user's revisions (license type and status changes with times), oldest first.
SELECT revision, changed_at, changed, status, license_type, site_admin, service_account, name, email
FROM {db}.user_changes FINAL
WHERE tenant_id = @tenant AND app = @app AND user_id = @user
ORDER BY revision
