package collector_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// runLog records every sync run of every replica.
type runLog struct {
	mu   sync.Mutex
	runs []collector.RunInfo
}

func (l *runLog) add(r collector.RunInfo) {
	l.mu.Lock()
	l.runs = append(l.runs, r)
	l.mu.Unlock()
}

func (l *runLog) snapshot() []collector.RunInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]collector.RunInfo(nil), l.runs...)
}

func TestReplicasShareTenantsAndTakeOver(t *testing.T) {
	if testing.Short() {
		t.Skip("replica test")
	}
	ns, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: t.TempDir(), Host: "127.0.0.1", Port: -1})
	require.NoError(t, err)
	defer ns.Shutdown()

	g := startSim(t, nil)

	database := storagetest.Database(t)
	runs := &runLog{}
	type replica struct {
		app    *collector.App
		cancel context.CancelFunc
		done   chan error
	}
	start := func(name string) replica {
		cfg := testConfig(t, database)
		cfg.NATSURL = ns.ClientURL()
		cfg.ReplicaID = name
		cfg.DefaultAuditInterval = 10 * time.Second
		ctx, cancel := context.WithCancel(context.Background())
		app, err := collector.Start(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), collector.Options{RunObserver: runs.add})
		require.NoError(t, err)
		r := replica{app: app, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- app.Run(ctx) }()
		return r
	}
	replicas := []replica{start("r1"), start("r2"), start("r3")}
	defer func() {
		for _, r := range replicas {
			if r.cancel != nil {
				r.cancel()
				<-r.done
				r.app.Close()
			}
		}
	}()

	// Let the replicas share the shards (leases refresh every LeaseTTL/3) before connecting.
	time.Sleep(2 * testConfig(t, database).LeaseTTL)

	// Twelve small tenants connected through one replica's API.
	const tenants = 12
	api := "http://" + replicas[0].app.Addr
	e := &env{t: t, api: api}
	for i := 0; i < tenants; i++ {
		org := g.addOrg(t, simulator.OrgSpec{Name: fmt.Sprintf("t%d", i), Seed: int64(100 + i), Users: 20, Events: 200})
		e.connect(fmt.Sprintf("t%02d", i), g, org, http.StatusOK)
	}
	// Every tenant gets synced.
	for i := 0; i < tenants; i++ {
		e.waitConnection(fmt.Sprintf("t%02d", i), time.Minute, func(c events.Connection) bool { return c.Freshness.AuditSyncedThrough != nil })
	}
	owners := func(since time.Time) map[string]map[string]bool {
		out := map[string]map[string]bool{}
		for _, r := range runs.snapshot() {
			if r.Start.Before(since) {
				continue
			}
			if out[r.Tenant] == nil {
				out[r.Tenant] = map[string]bool{}
			}
			out[r.Tenant][r.Replica] = true
		}
		return out
	}
	used := map[string]bool{}
	for _, reps := range owners(time.Time{}) {
		for r := range reps {
			used[r] = true
		}
	}
	assert.GreaterOrEqual(t, len(used), 2, "tenants are spread over replicas: %v", used)

	// Kill r1 without letting it release its leases: close its NATS connection, then stop it.
	killedAt := time.Now()
	replicas[0].app.Conn.Close()
	replicas[0].cancel()
	<-replicas[0].done
	replicas[0].app.Close()
	replicas[0].cancel = nil

	// Within the lease TTL plus a cycle, every tenant is synced again, by r2 or r3 only.
	api = "http://" + replicas[1].app.Addr
	e = &env{t: t, api: api}
	deadline := time.Now().Add(45 * time.Second)
	for {
		after := owners(killedAt.Add(500 * time.Millisecond))
		if len(after) == tenants {
			for tenant, reps := range after {
				assert.False(t, reps["r1"], "dead replica r1 still synced %s", tenant)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tenants synced after r1 died", len(after), tenants)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Never two replicas on one tenant at once.
	all := runs.snapshot()
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.Tenant != b.Tenant || a.Replica == b.Replica {
				continue
			}
			overlap := a.Start.Before(b.End) && b.Start.Before(a.End)
			assert.False(t, overlap, "tenant %s synced by %s and %s at once", a.Tenant, a.Replica, b.Replica)
		}
	}
}
