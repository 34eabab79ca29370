// Command greenhouse-sim serves the Greenhouse simulator (Harvest v3 token, users, roles and
// permissions, and the Audit Log, all on one address) for demos and benchmarks, with seeded
// organisations. It prints each organisation's credential as a JSON line on stdout (client
// secret included: it is a simulator) and stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
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

type config struct {
	addr                string
	orgs, users, events int
	seed                int64
	fast                bool
	profile             string
}

func (c config) validate() error {
	var errs []error
	if c.addr == "" {
		errs = append(errs, errors.New("-addr is empty"))
	}
	if c.orgs < 1 {
		errs = append(errs, fmt.Errorf("-orgs %d: must be at least 1", c.orgs))
	}
	if c.users < 1 || c.users > 50000 {
		errs = append(errs, fmt.Errorf("-users %d: must be within 1..50000", c.users))
	}
	if c.events < 0 {
		errs = append(errs, fmt.Errorf("-events %d: must not be negative", c.events))
	}
	if c.profile != simulator.ProfileDocumented && c.profile != simulator.ProfileGenerous {
		errs = append(errs, fmt.Errorf("-profile %q: must be documented or generous", c.profile))
	}
	return errors.Join(errs...)
}

// options are Greenhouse's limits, or with fast every window scaled down ten times (a
// collector in front of it then needs -greenhouse-windows harvest=3s,audit=1s,token=6s,
// audit-paged=3s), in the profile -profile names.
func (c config) options() simulator.Options {
	if !c.fast {
		return simulator.Options{Profile: c.profile}
	}
	return simulator.Options{Profile: c.profile, HarvestWindow: 3 * time.Second, AuditWindow: time.Second,
		AuditPagedWindow: 3 * time.Second, TokenWindow: 6 * time.Second}
}

func run() error {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8089", "listen address")
	flag.IntVar(&c.orgs, "orgs", 3, "organisations to generate")
	flag.IntVar(&c.users, "users", 200, "users per organisation (1..50000)")
	flag.IntVar(&c.events, "events", 0, "audit events per organisation over the last 30 days (0: 40 per user)")
	flag.Int64Var(&c.seed, "seed", 1, "seed of the first organisation (the next ones add 1)")
	flag.BoolVar(&c.fast, "fast", false, "scale every rate-limit window down 10 times (demos)")
	flag.StringVar(&c.profile, "profile", simulator.ProfileDocumented, "documented (as Greenhouse's docs show it) or generous (every rate-limit header on every answer)")
	flag.Parse()
	if err := c.validate(); err != nil {
		return fmt.Errorf("invalid flags: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sim := simulator.New(c.options())
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(os.Stderr, "greenhouse-sim: %s orgs=%d users=%d events=%d seed=%d fast=%t\n",
		base, c.orgs, c.users, c.events, c.seed, c.fast)
	start := time.Now()
	enc := json.NewEncoder(os.Stdout)
	for i := range c.orgs {
		name := fmt.Sprintf("org%d", i+1)
		org, err := sim.AddOrg(simulator.OrgSpec{Name: name, Seed: c.seed + int64(i), Users: c.users, Events: c.events})
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("generate %s: %w", name, err)
		}
		cred := org.Credentials()
		if err := enc.Encode(map[string]any{"org": name, "client_id": cred.ClientID, "client_secret": cred.ClientSecret,
			"admin_user_id": cred.AdminUserID, "endpoints": map[string]string{"auth": base, "harvest": base, "audit_log": base}}); err != nil {
			_ = ln.Close()
			return fmt.Errorf("print credentials: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "greenhouse-sim: %d orgs generated in %v, serving\n", c.orgs, time.Since(start).Round(time.Millisecond))

	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(os.Stderr, "greenhouse-sim: stopped")
	return nil
}
