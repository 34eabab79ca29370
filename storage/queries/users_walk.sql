-- The ids of the users matching the list filters, in the list's order: one walk of
-- GET …/users. {user_filter} is user_filter.sql, {order} one of the sort orders of
-- storage.UserSort.
SELECT user_id
FROM {db}.users FINAL
WHERE tenant_id = @tenant AND app = @app
  AND {user_filter}
ORDER BY {order}
