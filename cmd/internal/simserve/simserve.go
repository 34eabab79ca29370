// Package simserve serves a Greenhouse simulator over HTTP for the test tools (cmd/crashtest,
// cmd/scaletest), with the routes of their own next to the simulator's: the organisations'
// names, connect bodies, ground truth or totals.
package simserve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// Listen opens addr and returns the listener and the base URL the simulator answers on
// (http://host:port), which the organisations' connect bodies name.
func Listen(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// Serve serves sim on ln with GET /orgs (the organisations' names, one a line) and routes
// (pattern → handler) next to it, prints ready once serving, and shuts down when ctx ends.
func Serve(ctx context.Context, ln net.Listener, sim *simulator.Server, orgs []*simulator.Org, routes map[string]http.HandlerFunc, ready string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs", func(w http.ResponseWriter, r *http.Request) {
		for _, org := range orgs {
			fmt.Fprintln(w, org.Name())
		}
	})
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	mux.Handle("/", sim)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Println(ready)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// WriteJSON answers v as JSON.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ConnectBody is the body of PUT /v1/tenants/{tenant}/connections/greenhouse connecting org
// on the simulator at base, with the users and Audit Log intervals given.
func ConnectBody(org *simulator.Org, base, usersInterval, auditInterval string) map[string]any {
	c := org.Credentials()
	return map[string]any{
		"client_id": c.ClientID, "client_secret": c.ClientSecret, "admin_user_id": c.AdminUserID,
		"endpoints": map[string]string{"auth": base, "harvest": base, "audit_log": base},
		"settings":  map[string]any{"users_interval": usersInterval, "audit_interval": auditInterval},
	}
}
