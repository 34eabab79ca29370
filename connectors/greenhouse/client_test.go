package greenhouse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// fastOptions are Greenhouse's limits on windows scaled down 100 times, in the simulator
// profile GREENHOUSE_SIM_PROFILE names (documented when unset).
func fastOptions() simulator.Options {
	return simulator.Options{
		Profile:       envProfile(),
		HarvestWindow: 300 * time.Millisecond, AuditWindow: 100 * time.Millisecond,
		AuditPagedWindow: 300 * time.Millisecond, TokenWindow: 600 * time.Millisecond,
	}
}

// envProfile is the simulator profile of this test run.
func envProfile() string {
	p, err := simulator.ProfileFromEnv()
	if err != nil {
		panic(err)
	}
	return p
}

type fixture struct {
	sim  *simulator.Server
	srv  *httptest.Server
	org  *simulator.Org
	opts simulator.Options
}

func newFixture(t *testing.T, opts simulator.Options, spec simulator.OrgSpec) *fixture {
	t.Helper()
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	org, err := sim.AddOrg(spec)
	require.NoError(t, err)
	return &fixture{sim: sim, srv: srv, org: org, opts: opts}
}

func (f *fixture) client(t *testing.T, mut ...func(*greenhouse.Config)) *greenhouse.Client {
	t.Helper()
	c := f.org.Credentials()
	cfg := greenhouse.Config{
		Endpoints: greenhouse.Endpoints{Auth: f.srv.URL, Harvest: f.srv.URL, AuditLog: f.srv.URL},
		ClientID:  c.ClientID, ClientSecret: c.ClientSecret, AdminUserID: c.AdminUserID,
		AuditPagedLimit: 3, AuditPagedWindow: 300 * time.Millisecond, // as fastOptions
		AllowInsecure: true, UnsafeAllowLoopback: true, // the simulator: plain http on loopback
		// The client assumes the simulator's windows where no X-RateLimit-Reset names them.
		TokenWindow: f.opts.TokenWindow, HarvestWindow: f.opts.HarvestWindow, AuditWindow: f.opts.AuditWindow,
	}
	if f.opts.AuditPagedWindow > 0 {
		cfg.AuditPagedWindow = f.opts.AuditPagedWindow
	}
	for _, m := range mut {
		m(&cfg)
	}
	gc, err := greenhouse.New(cfg)
	require.NoError(t, err)
	return gc
}

func listAllUsers(t *testing.T, gc *greenhouse.Client) ([]greenhouse.User, error) {
	var out []greenhouse.User
	err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, func(p []greenhouse.User) error {
		out = append(out, p...)
		return nil
	})
	return out, err
}

func TestListUsersCompleteAcrossPageBoundaries(t *testing.T) {
	for _, n := range []int{1, 499, 500, 501, 1234} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: int64(n), Users: n, Events: 10})
			users, err := listAllUsers(t, f.client(t))
			require.NoError(t, err)
			truth := f.org.Truth()
			require.Len(t, users, len(truth.Users), "every user, service accounts included")
			seen := map[int64]bool{}
			for i, u := range users {
				assert.False(t, seen[u.ID], "user %d listed twice", u.ID)
				seen[u.ID] = true
				if i > 0 {
					assert.Less(t, u.ID, users[i-1].ID, "ids descend")
				}
			}
			for _, tu := range truth.Users {
				assert.True(t, seen[tu.ID], "user %d missing", tu.ID)
			}
			// Pages of 500: ceil(n/500) user requests plus one token.
			assert.Equal(t, int64((n+499)/500), f.org.Stats().HarvestRequests)
		})
	}
}

func TestUsersDecodedFaithfully(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 3, Users: 300, Events: 10})
	users, err := listAllUsers(t, f.client(t))
	require.NoError(t, err)
	byID := map[int64]greenhouse.User{}
	for _, u := range users {
		byID[u.ID] = u
	}
	services := 0
	for _, tu := range f.org.Truth().Users {
		u := byID[tu.ID]
		assert.Equal(t, tu.Name, u.Name)
		assert.Equal(t, tu.Email, u.PrimaryEmail)
		assert.Equal(t, tu.SiteAdmin, u.SiteAdmin)
		assert.Equal(t, tu.ServiceAccount, u.ServiceAccount)
		assert.Equal(t, tu.Status == "deactivated", u.Deactivated)
		assert.True(t, tu.CreatedAt.Equal(u.CreatedAt))
		if u.ServiceAccount {
			services++
		}
	}
	assert.Positive(t, services, "the org has service accounts and they are listed")
}

func TestPermissionsListedInBulk(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 4, Users: 2000, Events: 10})
	gc := f.client(t)
	ctx := context.Background()
	jobUsers := map[int64]bool{}
	var roles []greenhouse.UserRole
	require.NoError(t, gc.ListUserRoles(ctx, func(rs []greenhouse.UserRole) error { roles = append(roles, rs...); return nil }))
	require.NoError(t, gc.ListJobPermissions(ctx, func(ps []greenhouse.JobPermission) error {
		for _, p := range ps {
			jobUsers[p.UserID] = true
		}
		return nil
	}))
	require.NoError(t, gc.ListFutureJobPermissions(ctx, func(ps []greenhouse.FutureJobPermission) error {
		for _, p := range ps {
			jobUsers[p.UserID] = true
		}
		return nil
	}))
	assert.NotEmpty(t, roles)
	for _, u := range f.org.Truth().Users {
		assert.Equal(t, u.LicenseType == "job_admin", jobUsers[u.ID] && !u.SiteAdmin, "permissions of %d", u.ID)
	}
	// Bulk: a handful of requests, never one per user.
	assert.Less(t, f.org.Stats().HarvestRequests, int64(30))
}

func TestTokenRefreshesBeforeExpiryAndOn401(t *testing.T) {
	opts := fastOptions()
	opts.TokenTTL = 61 * time.Second // inside the 60 s refresh margin after 1 s
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	opts.Now = func() time.Time { return time.Unix(0, now.Load()) }
	f := newFixture(t, opts, simulator.OrgSpec{Name: "acme", Seed: 5, Users: 10, Events: 10})
	gc := f.client(t, func(c *greenhouse.Config) { c.Now = opts.Now })
	_, err := listAllUsers(t, gc)
	require.NoError(t, err)
	assert.Equal(t, int64(1), f.org.Stats().TokenRequests)
	_, err = listAllUsers(t, gc)
	require.NoError(t, err)
	assert.Equal(t, int64(1), f.org.Stats().TokenRequests, "a fresh token is reused")
	now.Add(int64(2 * time.Second)) // now within 60 s of expiry
	_, err = listAllUsers(t, gc)
	require.NoError(t, err)
	assert.Equal(t, int64(2), f.org.Stats().TokenRequests, "refreshed before expiry")

	// A 401 from Harvest: refresh once and retry once.
	var rejected atomic.Bool
	wrap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/") && rejected.CompareAndSwap(false, true) {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"Unauthorized","errors":["Token could not be decoded."]}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	defer wrap.Close()
	gc2 := f.client(t, func(c *greenhouse.Config) {
		c.Now = opts.Now
		c.Endpoints = greenhouse.Endpoints{Auth: wrap.URL, Harvest: wrap.URL, AuditLog: wrap.URL}
	})
	before := f.org.Stats().TokenRequests
	users, err := listAllUsers(t, gc2)
	require.NoError(t, err)
	assert.Len(t, users, 10)
	assert.Equal(t, before+2, f.org.Stats().TokenRequests, "one token, one refresh after the 401")
}

// auditDisabledCode is the code of an account without the Audit Log add-on: the generous
// profile says "not enabled", the documented one answers the docs' generic 403.
func auditDisabledCode() greenhouse.Code {
	if envProfile() == simulator.ProfileGenerous {
		return greenhouse.CodeAuditLogNotEnabled
	}
	return greenhouse.CodeAuditLogForbidden
}

func TestErrorCodesFromFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults simulator.Faults
		admin  int64 // 0: the org's admin
		op     string
		code   greenhouse.Code
	}{
		{"unknown client", simulator.Faults{InvalidClient: true}, 0, "users", greenhouse.CodeInvalidClient},
		{"admin not a user", simulator.Faults{}, 1, "users", greenhouse.CodeAdminUserInvalid},
		{"admin not site admin", simulator.Faults{AdminNotSiteAdmin: true}, 0, "users", greenhouse.CodeAdminNotSiteAdmin},
		{"missing users scope", simulator.Faults{MissingScopes: []string{"harvest:users:list"}}, 0, "users", greenhouse.CodeMissingScope},
		{"missing permissions scope", simulator.Faults{MissingScopes: []string{"harvest:user_job_permissions:list"}}, 0, "permissions", greenhouse.CodeMissingScope},
		// Only the generous profile says "not enabled"; the documented 403 does not.
		{"audit log not enabled", simulator.Faults{AuditLogDisabled: true}, 0, "audit", auditDisabledCode()},
		{"audit log on a wrong host", simulator.Faults{AuditLogWrongHost: true}, 0, "audit", greenhouse.CodeAuditLogNotFound},
		{"audit log scope", simulator.Faults{MissingScopes: []string{"audit_log:events:list"}}, 0, "audit", greenhouse.CodeMissingScope},
		{"server errors", simulator.Faults{Fail5xx: 1000}, 0, "users", greenhouse.CodeUnavailable},
		{"html body", simulator.Faults{Malformed: "html"}, 0, "users", greenhouse.CodeUnexpectedResponse},
		{"truncated body", simulator.Faults{Malformed: "truncated"}, 0, "users", greenhouse.CodeUnexpectedResponse},
		{"wrong types", simulator.Faults{Malformed: "wrong_type"}, 0, "users", greenhouse.CodeUnexpectedResponse},
		{"hostile link", simulator.Faults{Malformed: "hostile_link"}, 0, "users", greenhouse.CodeUnexpectedResponse},
		{"body over 64 MiB", simulator.Faults{Malformed: "huge"}, 0, "users", greenhouse.CodeUnexpectedResponse},
		{"absurd Retry-After", simulator.Faults{Malformed: "absurd_retry_after"}, 0, "users", greenhouse.CodeRateLimited},
		{"audit truncated", simulator.Faults{Malformed: "truncated"}, 0, "audit", greenhouse.CodeUnexpectedResponse},
		{"missing roles scope", simulator.Faults{MissingScopes: []string{"harvest:user_roles:list"}}, 0, "roles", greenhouse.CodeMissingScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 6, Users: 700, Events: 50})
			f.org.SetFaults(tt.faults)
			gc := f.client(t, func(c *greenhouse.Config) {
				if tt.admin != 0 {
					c.AdminUserID = tt.admin
				}
				c.MaxRetries = 2
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var err error
			start := time.Now()
			switch tt.op {
			case "users":
				err = gc.ListUsers(ctx, greenhouse.UserQuery{}, func([]greenhouse.User) error { return nil })
			case "permissions":
				err = gc.ListJobPermissions(ctx, func([]greenhouse.JobPermission) error { return nil })
			case "roles":
				err = gc.ListUserRoles(ctx, func([]greenhouse.UserRole) error { return nil })
			case "audit":
				err = gc.AuditEvents(ctx, time.Now().Add(-time.Hour), time.Now(), func(greenhouse.AuditBatch) error { return nil })
			}
			require.Error(t, err)
			assert.Equal(t, tt.code, greenhouse.CodeOf(err), err.Error())
			var ae *greenhouse.APIError
			require.True(t, errors.As(err, &ae))
			assert.True(t, errors.Is(err, &greenhouse.APIError{Code: tt.code}), "errors.Is matches the sentinel")
			assert.NotContains(t, err.Error(), f.org.Credentials().ClientSecret, "no secret in errors")
			if tt.code == greenhouse.CodeRateLimited {
				assert.Equal(t, 5*time.Minute, ae.RetryAfter, "an absurd Retry-After is clamped")
				assert.Less(t, time.Since(start), 2*time.Second, "and beyond the deadline it is not slept")
			}
		})
	}
}

func TestLegacyKeyRefused(t *testing.T) {
	_, err := greenhouse.New(greenhouse.Config{ClientID: "0123456789abcdef0123456789ABCDEF", AdminUserID: 1})
	require.Error(t, err)
	assert.True(t, errors.Is(err, greenhouse.ErrLegacyAPIKey))
	assert.NotContains(t, err.Error(), "0123456789abcdef0123456789ABCDEF", "the key is not echoed")
}

func TestAuditLogForbiddenAndRateLimitedWithinDeadline(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 7, Users: 10, Events: 10})
	mode := atomic.Value{}
	mode.Store("forbidden")
	wrap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/events") {
			switch mode.Load() {
			case "forbidden":
				w.WriteHeader(403)
				_, _ = w.Write([]byte(`{"message":"Forbidden"}`))
			case "throttled":
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(429)
				_, _ = w.Write([]byte(`{"message":"Rate limit exceeded"}`))
			}
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	defer wrap.Close()
	gc := f.client(t, func(c *greenhouse.Config) {
		c.Endpoints = greenhouse.Endpoints{Auth: wrap.URL, Harvest: wrap.URL, AuditLog: wrap.URL}
	})
	err := gc.AuditEvents(context.Background(), time.Now().Add(-time.Hour), time.Now(), func(greenhouse.AuditBatch) error { return nil })
	assert.Equal(t, greenhouse.CodeAuditLogForbidden, greenhouse.CodeOf(err))

	mode.Store("throttled")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err = gc.AuditEvents(ctx, time.Now().Add(-time.Hour), time.Now(), func(greenhouse.AuditBatch) error { return nil })
	assert.Equal(t, greenhouse.CodeRateLimited, greenhouse.CodeOf(err))
	assert.Less(t, time.Since(start), time.Second, "a Retry-After beyond the deadline returns at once instead of sleeping")
}

func TestRetryAfterIsWaitedExactly(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 8, Users: 10, Events: 10})
	var throttledAt atomic.Int64
	wrap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/users") && throttledAt.CompareAndSwap(0, time.Now().UnixNano()) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"message":"Rate limit exceeded"}`))
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	defer wrap.Close()
	gc := f.client(t, func(c *greenhouse.Config) {
		c.Endpoints = greenhouse.Endpoints{Auth: wrap.URL, Harvest: wrap.URL, AuditLog: wrap.URL}
	})
	_, err := listAllUsers(t, gc)
	require.NoError(t, err)
	waited := time.Since(time.Unix(0, throttledAt.Load()))
	assert.GreaterOrEqual(t, waited, time.Second, "waited the whole Retry-After")
	assert.Less(t, waited, 1500*time.Millisecond, "and not much more")
	assert.Equal(t, int64(1), gc.Stats().Throttled)
}

func TestPacedSyncSeesNo429(t *testing.T) {
	opts := fastOptions()
	opts.HarvestLimit = 4 // a tight budget: the sync must wait for resets rather than hit 429s
	opts.AuditLimit = 3
	f := newFixture(t, opts, simulator.OrgSpec{Name: "acme", Seed: 9, Users: 3000, Events: 6000})
	gc := f.client(t)
	ctx := context.Background()
	_, err := listAllUsers(t, gc)
	require.NoError(t, err)
	require.NoError(t, gc.ListJobPermissions(ctx, func([]greenhouse.JobPermission) error { return nil }))
	require.NoError(t, gc.ListFutureJobPermissions(ctx, func([]greenhouse.FutureJobPermission) error { return nil }))
	n := 0
	require.NoError(t, gc.AuditEvents(ctx, time.Now().Add(-30*24*time.Hour), time.Now(), func(b greenhouse.AuditBatch) error {
		n += len(b.Events)
		return nil
	}))
	assert.Equal(t, f.org.Truth().Events, n)
	assert.Zero(t, f.org.Stats().Throttled, "no 429 in a paced sync")
	assert.Zero(t, gc.Stats().Throttled)
}

func TestAuditWindowsFitOnePageAndDeliverEverythingOnce(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 10, Users: 400, Events: 20000})
	gc := f.client(t)
	ids := map[string]int{}
	var last time.Time
	require.NoError(t, gc.AuditEvents(context.Background(), time.Now().Add(-30*24*time.Hour), time.Now(), func(b greenhouse.AuditBatch) error {
		for _, e := range b.Events {
			ids[e.ID]++
		}
		if !b.Through.IsZero() {
			assert.False(t, b.Through.Before(last), "windows come oldest first")
			last = b.Through
		}
		return nil
	}))
	assert.Len(t, ids, f.org.Truth().Events, "every event")
	for id, n := range ids {
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
	st := f.org.Stats()
	assert.Zero(t, st.AuditPaged, "no point-in-time pagination for an ordinary density")
	// 20,000 events at 400 per window is 50 windows; sizing from hits keeps re-reads low.
	assert.LessOrEqual(t, st.AuditRequests, int64(75), "requests: %d", st.AuditRequests)
}

// TestAuditDenseSecondUsesPITAndRecoversFromExpiry reads a second too dense for one page with
// point-in-time pagination, whatever form next_search_after takes (one, two or three parts in
// the documented profile; a JSON list in the generous one) and whether the API takes back three
// parts or insists on two, through points in time that expire after one continuation (the
// documented profile answers the expiry with 400 and 404 alternately).
func TestAuditDenseSecondUsesPITAndRecoversFromExpiry(t *testing.T) {
	for name, faults := range map[string]simulator.Faults{
		"expiring":                 {ExpirePIT: true},
		"expiring, quirky":         {ExpirePIT: true, SearchAfterQuirk: true},
		"two parts only":           {SearchAfterTwoPartsOnly: true},
		"expiring, two parts only": {ExpirePIT: true, SearchAfterTwoPartsOnly: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 11, Users: 50, Events: 100})
			burst := time.Now().Add(-time.Hour).Truncate(time.Second)
			f.org.AddEvents(1300, burst, burst.Add(999*time.Millisecond)) // one second, three pages
			f.org.SetFaults(faults)
			gc := f.client(t)
			ids := map[string]int{}
			require.NoError(t, gc.AuditEvents(context.Background(), time.Now().Add(-2*time.Hour), time.Now(), func(b greenhouse.AuditBatch) error {
				for _, e := range b.Events {
					ids[e.ID]++
				}
				return nil
			}))
			// Every event of the last two hours, the burst included, exactly once.
			for id, n := range ids {
				require.Equal(t, 1, n, "event %s delivered %d times", id, n)
			}
			assert.GreaterOrEqual(t, len(ids), 1300)
			// The same read without faults and with the whole 30 days: exactly the org's events.
			f.org.SetFaults(simulator.Faults{})
			all := map[string]int{}
			require.NoError(t, gc.AuditEvents(context.Background(), time.Now().Add(-30*24*time.Hour), time.Now(), func(b greenhouse.AuditBatch) error {
				for _, e := range b.Events {
					all[e.ID]++
				}
				return nil
			}))
			assert.Len(t, all, f.org.Truth().Events)
			for id := range ids {
				assert.Equal(t, 1, all[id], "event %s of the PIT read is one of the org's", id)
			}
			// Three pages and the empty last one take 4 paginated requests.
			assert.GreaterOrEqual(t, f.org.Stats().AuditPaged, int64(4), "the dense second was paginated")
		})
	}
}

func TestCheckReportsEveryCheck(t *testing.T) {
	status := func(cs []connectors.Check) map[string]string {
		out := map[string]string{}
		for _, c := range cs {
			out[string(c.Name)] = string(c.Status) + ":" + c.Code
			if c.Status == connectors.CheckFailed {
				assert.NotEmpty(t, c.Message)
			}
		}
		return out
	}
	tests := []struct {
		name   string
		faults simulator.Faults
		want   map[string]string
	}{
		{"healthy", simulator.Faults{}, map[string]string{"credentials": "ok:", "admin_user": "ok:", "users": "ok:", "permissions": "ok:", "audit_log": "ok:", "actions": "ok:"}},
		{"bad credentials", simulator.Faults{InvalidClient: true}, map[string]string{"credentials": "failed:invalid_client", "admin_user": "skipped:", "users": "skipped:", "permissions": "skipped:", "audit_log": "skipped:", "actions": "skipped:"}},
		{"not site admin", simulator.Faults{AdminNotSiteAdmin: true}, map[string]string{"credentials": "ok:", "admin_user": "failed:admin_not_site_admin", "users": "skipped:", "permissions": "skipped:", "audit_log": "skipped:", "actions": "skipped:"}},
		{"no audit log", simulator.Faults{AuditLogDisabled: true}, map[string]string{"credentials": "ok:", "admin_user": "ok:", "users": "ok:", "permissions": "ok:", "audit_log": "failed:" + string(auditDisabledCode()), "actions": "ok:"}},
		{"audit log on a wrong host", simulator.Faults{AuditLogWrongHost: true}, map[string]string{"credentials": "ok:", "admin_user": "ok:", "users": "ok:", "permissions": "ok:", "audit_log": "failed:audit_log_not_found", "actions": "ok:"}},
		{"scope missing", simulator.Faults{MissingScopes: []string{"harvest:future_job_permissions:list"}}, map[string]string{"credentials": "ok:", "admin_user": "ok:", "users": "ok:", "permissions": "failed:missing_scope", "audit_log": "ok:", "actions": "ok:"}},
		{"no write permission", simulator.Faults{MissingScopes: []string{simulator.ScopeDeactivate}}, map[string]string{"credentials": "ok:", "admin_user": "ok:", "users": "ok:", "permissions": "ok:", "audit_log": "ok:", "actions": "failed:actions_not_permitted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 12, Users: 20, Events: 20})
			f.org.SetFaults(tt.faults)
			got := f.client(t).Check(context.Background())
			assert.Equal(t, tt.want, status(got))
			assert.Equal(t, []string{"credentials", "admin_user", "users", "permissions", "audit_log", "actions"}, names(got))
		})
	}
	t.Run("admin user unknown", func(t *testing.T) {
		f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 13, Users: 20, Events: 20})
		got := f.client(t, func(c *greenhouse.Config) { c.AdminUserID = 42 }).Check(context.Background())
		assert.Equal(t, "failed:admin_user_invalid", status(got)["admin_user"])
	})
	t.Run("bounded by its context", func(t *testing.T) {
		f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 14, Users: 20, Events: 20})
		f.org.SetFaults(simulator.Faults{Latency: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		got := f.client(t).Check(ctx)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Equal(t, "failed:greenhouse_unavailable", status(got)["credentials"])
	})
}

func names(cs []connectors.Check) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.Name)
	}
	return out
}

func TestIncrementalUserListingByUpdatedWindow(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 15, Users: 1200, Events: 10})
	time.Sleep(1100 * time.Millisecond) // the filter has one-second precision
	since := time.Now()
	truth := f.org.Truth()
	changed := truth.Users[100].ID
	require.NoError(t, f.org.DeactivateUser(changed))
	gc := f.client(t)
	var got []greenhouse.User
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{UpdatedFrom: since, UpdatedTo: time.Now().Add(time.Second)},
		func(p []greenhouse.User) error { got = append(got, p...); return nil }))
	require.Len(t, got, 1, "only the user updated in the window")
	assert.Equal(t, changed, got[0].ID)
	assert.True(t, got[0].Deactivated)
	assert.Equal(t, int64(1), f.org.Stats().HarvestRequests, "one request instead of three pages")
}

// TestPagesOutliveTheirBuffers: the answers of a sync are read into reused buffers
// (sendRead), so what a page decodes to must own its bytes: events and users delivered by a
// first read are unchanged after a second read has refilled every buffer.
func TestPagesOutliveTheirBuffers(t *testing.T) {
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 11, Users: 1200, Events: 6000})
	gc := f.client(t)
	readAll := func() ([]greenhouse.AuditEvent, []greenhouse.User) {
		var evs []greenhouse.AuditEvent
		require.NoError(t, gc.AuditEvents(context.Background(), time.Now().Add(-30*24*time.Hour), time.Now(), func(b greenhouse.AuditBatch) error {
			evs = append(evs, b.Events...)
			return nil
		}))
		users, err := listAllUsers(t, gc)
		require.NoError(t, err)
		return evs, users
	}
	evs, users := readAll()
	require.Greater(t, len(evs), 5000)
	require.Len(t, users, 1200)
	snapshot := fmt.Sprintf("%+v %+v", evs, users)
	// The second read sees the same events, and the harvest_access events of the first
	// read's user listing besides.
	evs2, users2 := readAll()
	again := map[string]greenhouse.AuditEvent{}
	for _, e := range evs2 {
		again[e.ID] = e
	}
	for _, e := range evs {
		require.Equal(t, e, again[e.ID])
	}
	require.Equal(t, users, users2)
	require.True(t, snapshot == fmt.Sprintf("%+v %+v", evs, users), "the first read's results changed under the second")
}
