package simulator_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// benchFixture is a 5,000-user, 200,000-event organisation with a Site Admin's token, built
// once per benchmark name: b.N's ramp runs a benchmark function several times.
type benchFixture struct {
	sim   *simulator.Server
	clock *clock
	token string
}

var (
	benchMu       sync.Mutex
	benchFixtures = map[string]*benchFixture{}
)

func fixture(b *testing.B) *benchFixture {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if f := benchFixtures[b.Name()]; f != nil {
		return f
	}
	c := newClock()
	opts := roomy(c)
	opts.HarvestLimit, opts.AuditLimit = 1<<40, 1<<40
	sim := simulator.New(opts)
	org, err := sim.AddOrg(simulator.OrgSpec{Name: "big", Seed: 12, Users: 5000, Events: 200_000})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &harness{t: &testing.T{}, sim: sim, srv: srv, org: org, clock: c}
	f := &benchFixture{sim: sim, clock: c, token: h.mint(org.Credentials().AdminUserID)}
	benchFixtures[b.Name()] = f
	return f
}

// serve runs target through the simulator's http.Handler b.N times and checks the status.
func (f *benchFixture) serve(b *testing.B, target string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := httptest.NewRecorder()
		f.sim.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", target, w.Code, w.Body.String())
		}
	}
}

// BenchmarkEventsPage serves a full /events page: 500 events of a 3-hour window without
// paging, the collector's usual request.
func BenchmarkEventsPage(b *testing.B) {
	f := fixture(b)
	from := f.clock.Now().Add(-24 * time.Hour)
	f.serve(b, "/events?size=500&after_time="+at(from)+"&before_time="+at(from.Add(3*time.Hour)))
}

// BenchmarkEventsPagePaged opens a point in time on a window and serves its first page of 500.
func BenchmarkEventsPagePaged(b *testing.B) {
	f := fixture(b)
	from := f.clock.Now().Add(-24 * time.Hour)
	f.serve(b, "/events?paging=true&size=500&after_time="+at(from)+"&before_time="+at(from.Add(3*time.Hour)))
}

// BenchmarkUsersPage serves a /v3/users page of 500 (with the harvest_access event the
// documented profile records).
func BenchmarkUsersPage(b *testing.B) {
	f := fixture(b)
	f.serve(b, "/v3/users?per_page=500&show_service_accounts=true")
}
