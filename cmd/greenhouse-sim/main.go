// Command greenhouse-sim serves the Greenhouse simulator (Harvest v3 token, users, roles and
// permissions, and the Audit Log) for demos and benchmarks, with seeded organisations. It
// prints each organisation's credential as a JSON line on stdout (a simulator has no secrets
// worth keeping) and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "greenhouse-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8089", "listen address")
	orgs := flag.Int("orgs", 3, "organisations to generate")
	users := flag.Int("users", 200, "users per organisation")
	events := flag.Int("events", 0, "audit events per organisation over the last 30 days (0: 40 per user)")
	seed := flag.Int64("seed", 1, "seed of the first organisation")
	fast := flag.Bool("fast", false, "scale every rate-limit window down 10 times")
	flag.Parse()
	if *orgs < 1 || *users < 1 || *users > 50000 || *events < 0 {
		return errors.New("orgs must be ≥ 1, users 1..50000, events ≥ 0")
	}
	opts := simulator.Options{}
	if *fast {
		opts = simulator.Options{HarvestWindow: 3 * time.Second, AuditWindow: time.Second, AuditPagedWindow: 3 * time.Second, TokenWindow: 6 * time.Second}
	}
	sim := simulator.New(opts)
	enc := json.NewEncoder(os.Stdout)
	for i := 0; i < *orgs; i++ {
		org, err := sim.AddOrg(simulator.OrgSpec{Name: fmt.Sprintf("org%d", i+1), Seed: *seed + int64(i), Users: *users, Events: *events})
		if err != nil {
			return err
		}
		c := org.Credentials()
		base := "http://" + *addr
		_ = enc.Encode(map[string]any{"org": fmt.Sprintf("org%d", i+1), "client_id": c.ClientID, "client_secret": c.ClientSecret,
			"admin_user_id": c.AdminUserID, "endpoints": map[string]string{"auth": base, "harvest": base, "audit_log": base}})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *addr, Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
