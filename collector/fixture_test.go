package collector_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// The fixture of "a connected tenant on a simulator", and its parts for the tests that need
// them apart: a simulator served over HTTP (startSim), its organisations (addOrg), a collector
// replica (startEnv, e2e_test.go) and the connect request (connect).

// simGreenhouse is a simulator served over HTTP until the test ends.
type simGreenhouse struct {
	*simulator.Server
	URL string
}

// startSim serves sim (nil: fastSim) until the test ends; it stops after the collector
// replicas started later, which may still be calling it.
func startSim(t testing.TB, sim *simulator.Server) *simGreenhouse {
	t.Helper()
	if sim == nil {
		sim = fastSim()
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &simGreenhouse{Server: sim, URL: srv.URL}
}

// addOrg adds an organisation to the simulator.
func (g *simGreenhouse) addOrg(t testing.TB, spec simulator.OrgSpec) *simulator.Org {
	t.Helper()
	org, err := g.AddOrg(spec)
	require.NoError(t, err)
	return org
}

// connect puts tenant's connection to org on g and requires the answer's status want; it
// returns the connection document answered.
func (e *env) connect(tenant string, g *simGreenhouse, org *simulator.Org, want int) events.Connection {
	e.t.Helper()
	var doc events.Connection
	require.Equal(e.t, want, e.call(http.MethodPut, "/v1/tenants/"+tenant+"/connections/greenhouse", connectBody(org, g.URL), &doc))
	return doc
}

// connectedTenant is a tenant connected on a simulator: the simulator with the tenant's
// organisation, a collector replica, and the connection it accepted (its first sync starts at
// once).
type connectedTenant struct {
	*env
	sim    *simGreenhouse
	org    *simulator.Org
	tenant string
}

// connectTenant starts a simulator (fastSim) with the organisation of spec, a collector
// replica with cfg (nil: testConfig on a fresh database) and connects the organisation as the
// tenant spec.Name.
func connectTenant(t *testing.T, spec simulator.OrgSpec, cfg *collector.Config) *connectedTenant {
	t.Helper()
	g := startSim(t, nil)
	org := g.addOrg(t, spec)
	if cfg == nil {
		c := testConfig(t, storagetest.Database(t))
		cfg = &c
	}
	e := startEnv(t, *cfg)
	e.connect(spec.Name, g, org, http.StatusOK)
	return &connectedTenant{env: e, sim: g, org: org, tenant: spec.Name}
}
