// Command demo is the local demo: a built-in Greenhouse simulator with a few tenants (one of
// which needs attention), the collector with an embedded NATS server, ClickHouse (its address
// given by deploy/local/demo.sh), the tenants connected through the real HTTP API, and a
// printed summary of what landed where once the first syncs are done, with a dry run and a
// real reclaim of inactive basic seats (reclaim.go). It keeps collecting
// until interrupted, then stops everything it started.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// tenant is one simulated customer of the demo.
type tenant struct {
	id     string
	users  int
	events int
	faults simulator.Faults
	legacy bool // connects with a v1/v2 Harvest key
	note   string
}

var tenants = []tenant{
	{id: "acme", users: 250, events: 12000, note: "healthy"},
	{id: "globex", users: 1200, events: 40000, note: "healthy, larger"},
	{id: "initech", users: 80, events: 3000, faults: simulator.Faults{AuditLogDisabled: true}, note: "no Audit Log add-on: degraded, no usage data"},
	{id: "umbrella", users: 60, events: 1000, faults: simulator.Faults{AdminNotSiteAdmin: true}, note: "admin user is not a Site Admin: refused"},
	{id: "hooli", users: 40, events: 500, legacy: true, note: "pastes a retired v1/v2 Harvest key: refused"},
}

func run() error {
	chAddr := flag.String("clickhouse", os.Getenv("CLICKHOUSE_ADDR"), "ClickHouse native address host:port")
	dataDir := flag.String("data-dir", ".demo", "data directory (embedded NATS)")
	httpAddr := flag.String("http-addr", "127.0.0.1:8080", "collector HTTP API address")
	verbose := flag.Bool("v", false, "print the collector's JSON logs")
	flag.Parse()
	if *chAddr == "" {
		return errors.New("no ClickHouse address: run deploy/local/demo.sh, or pass -clickhouse host:port")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	step := func(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

	// 1. The Greenhouse simulator, at Greenhouse's documented limits, answering as its docs
	// show (GREENHOUSE_SIM_PROFILE=generous: every rate-limit header on every answer).
	profile, err := simulator.ProfileFromEnv()
	if err != nil {
		return err
	}
	sim := simulator.New(simulator.Options{Profile: profile})
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	defer simSrv.Close()
	simURL := "http://" + simLn.Addr().String()
	orgs := map[string]*simulator.Org{}
	for i, t := range tenants {
		org, err := sim.AddOrg(simulator.OrgSpec{Name: t.id, Seed: int64(i + 1), Users: t.users, Events: t.events})
		if err != nil {
			return fmt.Errorf("simulated org %s: %w", t.id, err)
		}
		org.SetFaults(t.faults)
		orgs[t.id] = org
	}
	step("Greenhouse simulator on %s with %d organisations", simURL, len(tenants))

	// 2. The collector with embedded NATS.
	token := randomString(24)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := collector.DefaultConfig()
	cfg.HTTPAddr = *httpAddr
	cfg.APIToken = token
	cfg.ReplicaID = "demo"
	cfg.DataDir, _ = filepath.Abs(*dataDir)
	cfg.ClickHouseAddr = *chAddr
	cfg.ClickHouseDatabase = "saas_demo"
	cfg.SecretKeys = "demo:" + base64.StdEncoding.EncodeToString(key)
	cfg.AllowEndpointOverride = true
	cfg.AllowInsecureEndpoints = true               // the simulator speaks plain http on loopback
	cfg.AllowedEndpointHosts = "127.0.0.1"          // the simulator's address
	cfg.UnsafeAllowLoopbackEndpointsForTests = true // the simulator runs on this host
	cfg.DefaultAuditInterval = time.Minute
	cfg.DefaultUsersInterval = 5 * time.Minute
	logOut := io.Discard
	if *verbose {
		logOut = os.Stderr
	}
	log := zerolog.New(logOut).With().Timestamp().Logger()
	app, err := collector.Start(ctx, cfg, log, collector.Options{})
	if err != nil {
		return err
	}
	defer app.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx) }()
	api := "http://" + app.Addr
	step("collector API on %s (embedded NATS in process, ClickHouse %s database %s)", api, *chAddr, cfg.ClickHouseDatabase)

	// Count what is published, per subject.
	counts := &subjectCounts{n: map[string]int{}}
	if err := counts.follow(ctx, app.Bus.JetStream()); err != nil {
		return err
	}

	// 3. Connect every tenant through the HTTP API, as the dashboard backend would.
	client := &http.Client{Timeout: time.Minute}
	for _, t := range tenants {
		cred := orgs[t.id].Credentials()
		body := map[string]any{
			"client_id": cred.ClientID, "client_secret": cred.ClientSecret, "admin_user_id": cred.AdminUserID,
			"endpoints": map[string]string{"auth": simURL, "harvest": simURL, "audit_log": simURL},
		}
		if t.legacy {
			body = map[string]any{"api_key": "0123456789abcdef0123456789abcdef", "admin_user_id": cred.AdminUserID}
		}
		var doc events.Connection
		code, err := call(ctx, client, http.MethodPut, api+"/v1/tenants/"+t.id+"/connections/greenhouse", token, body, &doc)
		if err != nil {
			return fmt.Errorf("connect %s: %w", t.id, err)
		}
		step("PUT connection %-9s → %d %-10s %s", t.id, code, doc.State, failedChecks(doc))
	}

	// 4. Wait for the first sync of every stored tenant.
	step("waiting for the first syncs (users, permissions, 30-day Audit Log backfill)…")
	start := time.Now()
	pending := map[string]bool{}
	for _, t := range tenants {
		if t.faults.AdminNotSiteAdmin || t.legacy {
			continue
		}
		pending[t.id] = true
	}
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			return fmt.Errorf("collector stopped: %w", err)
		case <-time.After(time.Second):
		}
		for id := range pending {
			var doc events.Connection
			if _, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/"+id+"/connections/greenhouse", token, nil, &doc); err != nil {
				continue
			}
			if doc.Freshness.UsersSyncedAt != nil && (doc.Freshness.AuditSyncedThrough != nil || !doc.UsageData) && doc.LastSync != nil {
				step("  %-9s first sync done after %s (%s)", id, time.Since(start).Round(100*time.Millisecond), doc.State)
				delete(pending, id)
			}
		}
	}
	time.Sleep(2 * time.Second) // let the last events land

	// 5. A license policy per tenant, as its admin would enter it: what a seat costs a year and
	// how many were bought (Greenhouse does not say). Its waste is printed below.
	if err := putDemoPolicies(ctx, client, api, token); err != nil {
		return err
	}

	// 6. The summary.
	if err := printSummary(ctx, client, api, token, app, counts, cfg); err != nil {
		return err
	}
	fmt.Printf("\nThe collector keeps syncing (users every %s, Audit Log every %s). Try:\n", cfg.DefaultUsersInterval, cfg.DefaultAuditInterval)
	fmt.Printf("  curl -s -H 'Authorization: Bearer %s' %s/v1/connections\n", token, api)
	fmt.Printf("  curl -s -H 'Authorization: Bearer %s' '%s/v1/tenants/acme/licenses?usage=inactive'\n", token, api)
	fmt.Printf("  curl -s -H 'Authorization: Bearer %s' '%s/v1/tenants/acme/users?sort=last_activity_at&limit=20'\n", token, api)
	fmt.Printf("  curl -s -H 'Authorization: Bearer %s' -H 'Accept: text/csv' '%s/v1/tenants/acme/users?usage=inactive'\n", token, api)
	fmt.Printf("  clickhouse-client --port %s -d %s -q 'SELECT license_type, status, users FROM license_counts_buffer FINAL ORDER BY ts DESC LIMIT 10'\n",
		portOf(*chAddr), cfg.ClickHouseDatabase)
	fmt.Println("Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping…")
		return <-runErr
	case err := <-runErr:
		return err
	}
}

// demoPrices are a seat's price for a year in the demo's policies, by license type.
var demoPrices = map[string]string{"site_admin": "2400.00", "job_admin": "1200.00", "basic": "480.00"}

// putDemoPolicies puts a license policy on every stored tenant: the prices above, and a tenth
// more seats bought than are assigned now (PUT …/connections/greenhouse/policy).
func putDemoPolicies(ctx context.Context, client *http.Client, api, token string) error {
	var list struct {
		Connections []events.Connection `json:"connections"`
	}
	if _, err := call(ctx, client, http.MethodGet, api+"/v1/connections", token, nil, &list); err != nil {
		return err
	}
	for _, c := range list.Connections {
		var s collector.Summary
		if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/"+c.TenantID+"/usage/summary", token, nil, &s); err != nil || code != 200 {
			continue
		}
		types := map[string]any{}
		for typ, price := range demoPrices {
			n := s.LicensesByType[typ]
			types[typ] = map[string]any{"seats_purchased": n + n/10 + 1, "annual_cost": price, "currency": "USD"}
		}
		var doc events.PolicyDocument
		code, err := call(ctx, client, http.MethodPut, api+"/v1/tenants/"+c.TenantID+"/connections/greenhouse/policy", token,
			map[string]any{"license_types": types, "seats_unused_threshold": 10}, &doc)
		if err != nil || code != 200 {
			return fmt.Errorf("put the license policy of %s: %d %v", c.TenantID, code, err)
		}
		fmt.Printf("==> PUT policy %-9s → revision %d: seats a tenth above today's licenses; a year of a seat USD %s, %s, %s\n",
			c.TenantID, doc.Revision, demoPrices["site_admin"], demoPrices["job_admin"], demoPrices["basic"])
	}
	return nil
}

func printSummary(ctx context.Context, client *http.Client, api, token string, app *collector.App, counts *subjectCounts, cfg collector.Config) error {
	var list struct {
		Connections []events.Connection `json:"connections"`
	}
	if _, err := call(ctx, client, http.MethodGet, api+"/v1/connections", token, nil, &list); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("Connections (GET /v1/connections, those needing attention first)")
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  tenant\tstate\tusage data\tlast sync\tusers synced\taudit through\tneeds attention")
	for _, c := range list.Connections {
		last := "-"
		if c.LastSync != nil {
			last = fmt.Sprintf("%s %s, %d req, %d throttled", c.LastSync.Kind, c.LastSync.Status, c.LastSync.Requests, c.LastSync.Throttled)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%v\t%s\t%s\t%s\t%s\n", c.TenantID, c.State, c.UsageData, last,
			ts(c.Freshness.UsersSyncedAt), ts(c.Freshness.AuditSyncedThrough), failedChecks(c))
	}
	_ = tw.Flush()

	fmt.Println()
	fmt.Println("Licenses (GET /v1/tenants/{id}/usage/summary)")
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  tenant\tusers\tlicenses\tsite_admin\tjob_admin\tbasic\tactive\tinactive\tunknown\tutilisation\tinactive seats cost/yr\tunassigned seats cost/yr\twaste/yr")
	for _, c := range list.Connections {
		if c.State == collector.StateError && c.LastSync == nil {
			continue
		}
		var s collector.Summary
		if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/"+c.TenantID+"/usage/summary", token, nil, &s); err != nil || code != 200 {
			continue
		}
		waste := []string{"-", "-", "-"}
		for _, w := range s.Waste {
			waste = []string{money(w.Currency, w.InactiveCost), money(w.Currency, w.UnassignedCost), money(w.Currency, w.Total)}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f%%\t%s\t%s\t%s\n", c.TenantID, s.Users, s.Licenses,
			s.LicensesByType["site_admin"], s.LicensesByType["job_admin"], s.LicensesByType["basic"], s.Active, s.Inactive, s.Unknown, 100*s.Utilisation,
			waste[0], waste[1], waste[2])
	}
	_ = tw.Flush()

	var inactive struct {
		Licenses []events.LicenseRecord `json:"licenses"`
		Count    int                    `json:"count"`
	}
	if _, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/licenses?usage=inactive", token, nil, &inactive); err == nil {
		fmt.Printf("\nInactive licenses of acme (GET /v1/tenants/acme/licenses?usage=inactive): %d, the first five:\n", inactive.Count)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  email\tlicense\treason\tlast activity")
		for i, l := range inactive.Licenses {
			if i == 5 {
				break
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", l.Email, l.LicenseType, l.Reason, ts(l.LastActivityAt))
		}
		_ = tw.Flush()
	}

	printReadAPI(ctx, client, api, token)
	printReclaim(ctx, client, api, token, counts)

	fmt.Printf("\nClickHouse (database %s at %s)\n", cfg.ClickHouseDatabase, cfg.ClickHouseAddr)
	rows, err := app.Store.RowCounts(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  %-22s %8d rows\n", n, rows[n])
	}
	fmt.Println("\nNATS JetStream (stream SAAS, embedded, in process)")
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	for _, line := range counts.lines() {
		fmt.Fprintln(tw, "  "+line+"\t")
	}
	_ = tw.Flush()
	return nil
}

// subjectCounts counts the messages of the SAAS stream per subject.
type subjectCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *subjectCounts) follow(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.OrderedConsumer(ctx, "SAAS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"saas.>"}})
	if err != nil {
		return fmt.Errorf("follow the SAAS stream: %w", err)
	}
	_, err = cons.Consume(func(m jetstream.Msg) {
		var env struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(m.Data(), &env)
		c.mu.Lock()
		c.n[m.Subject()+"\t"+env.Type]++
		c.mu.Unlock()
	})
	return err
}

func (c *subjectCounts) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, v := range c.n {
		out = append(out, fmt.Sprintf("%s\t%d", k, v))
	}
	sort.Strings(out)
	return out
}

func call(ctx context.Context, c *http.Client, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

func failedChecks(doc events.Connection) string {
	var out []string
	for _, c := range doc.Checks {
		if c.Status == connectors.CheckFailed {
			out = append(out, string(c.Name)+": "+c.Code)
		}
	}
	return strings.Join(out, ", ")
}

func ts(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "9000"
	}
	return p
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// printReadAPI shows the read API: one page of a filtered, sorted users list and one trend.
// A tenant's first users sync runs before its Audit Log backfill, so its usage snapshot has
// every license unknown; a sync asked for now records one with the backfill's activity.
func printReadAPI(ctx context.Context, client *http.Client, api, token string) {
	var run map[string]string
	if code, err := call(ctx, client, http.MethodPost, api+"/v1/tenants/acme/connections/greenhouse/sync", token, nil, &run); err == nil && code == 202 {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			var doc events.Connection
			if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/connections/greenhouse", token, nil, &doc); err == nil && code == 200 &&
				doc.LastSync != nil && doc.LastSync.RunID == run["run_id"] && doc.LastSync.Kind == "audit" {
				break
			}
		}
	}
	const list = "/v1/tenants/acme/users?usage=inactive,unknown&license_type=job_admin,site_admin&sort=last_activity_at&order=asc&limit=5"
	var page collector.UsersPage
	if code, err := call(ctx, client, http.MethodGet, api+list, token, nil, &page); err == nil && code == 200 {
		fmt.Printf("\nOne page of a filtered, sorted list (GET %s): %d users in the walk, the first %d:\n", list, page.Total, len(page.Users))
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  user\tlicense\tusage\tlast activity\tdays since\tactive days (30)")
		for _, u := range page.Users {
			days := "never"
			if u.DaysSinceActivity != nil {
				days = fmt.Sprint(*u.DaysSinceActivity)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", u.Email, u.LicenseType, u.Usage, ts(u.LastActivityAt), days, u.ActiveDays30)
		}
		_ = tw.Flush()
		if page.NextCursor != "" {
			fmt.Printf("  next page: %s&cursor=%s\n", list, page.NextCursor)
		}
	}
	const trend = "/v1/tenants/acme/trends?bucket=day"
	var tr collector.Trends
	if code, err := call(ctx, client, http.MethodGet, api+trend, token, nil, &tr); err == nil && code == 200 {
		fmt.Printf("\nA trend (GET %s), the days with a users sync:\n", trend)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  day\tsnapshot\tlicenses\tsite_admin\tjob_admin\tbasic\tactive\tinactive\tunknown\tutilisation")
		for _, b := range tr.Buckets {
			if b.SnapshotAt == nil {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f%%\n", b.Start.Format(time.DateOnly), b.SnapshotAt.Format("15:04:05"),
				*b.Licenses, b.LicensesByType["site_admin"], b.LicensesByType["job_admin"], b.LicensesByType["basic"],
				*b.Active, *b.Inactive, *b.Unknown, 100**b.Utilisation)
		}
		_ = tw.Flush()
	}
}

// money is an amount of the summary in its currency, "unknown" for null.
func money(currency string, amount *string) string {
	if amount == nil {
		return "unknown"
	}
	return currency + " " + *amount
}
