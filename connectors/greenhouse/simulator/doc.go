// Package simulator is a simulated Greenhouse for tests, demos and benchmarks. It owns:
//
//   - one http.Handler serving the three Greenhouse hosts at once: the v3 token endpoint
//     (POST /token), the Harvest v3 listings (GET /v3/users, /v3/user_roles,
//     /v3/user_job_permissions, /v3/future_job_permissions) and the Audit Log (GET /events),
//     with the pagination, filters, ordering, error bodies and per-credential rate limits that
//     docs/greenhouse-wire.md fixes;
//   - any number of organisations (one credential, one tenant each), generated deterministically
//     from a seed, with compact storage: users indexed by id, audit events in one slice sorted by
//     time so that every window is two binary searches;
//   - two profiles (Options.Profile): documented, the default, answers exactly as Greenhouse's
//     published documentation shows (fewer rate-limit headers, expires_at in rotating forms,
//     next_search_after in one, two or three parts, the admin's own Harvest traffic in its
//     Audit Log); generous keeps every header on every answer and one shape of each value;
//   - faults on demand per organisation (disabled add-on, wrong Audit Log host, missing scopes,
//     non-admin sub, invalid client, expiring points in time, 5xx, latency, malformed bodies,
//     search_after quirks);
//   - mutations (deactivate, activate, remove, add users, grant permissions, add events) and the
//     ground truth a correct collector must end with (Org.Truth, with SeatUse the rule of what
//     counts as a person's activity), plus request statistics.
//
// It imports nothing of the collector: connectors and collector tests point every Greenhouse base
// URL at an httptest.Server wrapping a Server.
package simulator
