package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/events"
)

// The demo's reclaim (docs/api.md, "Actions"): one dry run and one real deactivation of acme's
// inactive basic seats, then the users sync that follows, with its license_freed alerts and
// the counts before and after.

// printReclaim reclaims up to five of acme's inactive basic seats, with the admin user added
// to show a guard refusing.
func printReclaim(ctx context.Context, client *http.Client, api, token string, counts *subjectCounts) {
	var inactive struct {
		Licenses []events.LicenseRecord `json:"licenses"`
	}
	if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/licenses?usage=inactive", token, nil, &inactive); err != nil || code != 200 {
		return
	}
	var ids []int64
	for _, l := range inactive.Licenses {
		if l.LicenseType == "basic" && len(ids) < 5 {
			ids = append(ids, l.UserID)
		}
	}
	var conn events.Connection
	if _, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/connections/greenhouse", token, nil, &conn); err != nil || len(ids) == 0 {
		return
	}
	ids = append(ids, conn.AdminUserID)
	before := acmeSummary(ctx, client, api, token)
	freedBefore := counts.count("saas.acme.greenhouse.alert\tsaas.alert.license_freed")

	body := map[string]any{"type": "deactivate", "user_ids": ids, "requested_by": "demo: rule inactive-basic", "reason": "inactive basic seat",
		"dry_run": true, "idempotency_key": "demo-dry-" + randomString(6)}
	var dry collector.ActionView
	if code, err := call(ctx, client, http.MethodPost, api+"/v1/tenants/acme/actions", token, body, &dry); err != nil || code != 200 {
		fmt.Printf("\ndry run failed: %d %v\n", code, err)
		return
	}
	printAction("A dry run (POST /v1/tenants/acme/actions, dry_run: true): nothing sent to Greenhouse", dry)

	body["dry_run"], body["idempotency_key"] = false, "demo-reclaim-"+randomString(6)
	var act collector.ActionView
	if code, err := call(ctx, client, http.MethodPost, api+"/v1/tenants/acme/actions", token, body, &act); err != nil || code != 202 {
		fmt.Printf("\nreclaim failed: %d %v\n", code, err)
		return
	}
	act = waitAction(ctx, client, api, token, act.ActionID)
	printAction("The reclaim (the same users, dry_run: false): 202 pending, then run on the owning replica", act)
	waitRun(ctx, client, api, token, act.FollowUpSync)
	after := acmeSummary(ctx, client, api, token)
	fmt.Printf("\nThe users sync that followed (run %s):\n", act.FollowUpSync)
	fmt.Printf("  licenses %d → %d, basic %d → %d, inactive %d → %d; saas.alert.license_freed events of acme %d → %d\n",
		before.Licenses, after.Licenses, before.LicensesByType["basic"], after.LicensesByType["basic"], before.Inactive, after.Inactive,
		freedBefore, counts.count("saas.acme.greenhouse.alert\tsaas.alert.license_freed"))
}

// printAction prints an action's users with their outcomes and any refusing guard.
func printAction(title string, a collector.ActionView) {
	fmt.Printf("\n%s: %s, %v\n", title, a.Status, a.Counts)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  user\tlicense\tlast activity\toutcome\tcode\tGreenhouse")
	for _, u := range a.Users {
		status := "-"
		if u.HTTPStatus != 0 {
			status = fmt.Sprint(u.HTTPStatus)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", u.UserID, u.LicenseType, ts(u.LastActivityAt), u.Outcome, u.Code, status)
	}
	_ = tw.Flush()
}

// acmeSummary reads acme's usage summary (zero on failure).
func acmeSummary(ctx context.Context, client *http.Client, api, token string) collector.Summary {
	var s collector.Summary
	_, _ = call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/usage/summary", token, nil, &s)
	return s
}

// waitAction polls an action until it is completed (a minute at most).
func waitAction(ctx context.Context, client *http.Client, api, token, id string) collector.ActionView {
	var a collector.ActionView
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		a = collector.ActionView{} // a fresh answer each time: decoding into the last one would merge its counts
		if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/actions/"+id, token, nil, &a); err == nil && code == 200 && a.Status == "completed" {
			break
		}
	}
	return a
}

// waitRun waits until acme's last run is runID's Audit Log part (a minute at most), and a
// moment for its events.
func waitRun(ctx context.Context, client *http.Client, api, token, runID string) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && runID != ""; time.Sleep(250 * time.Millisecond) {
		var doc events.Connection
		if code, err := call(ctx, client, http.MethodGet, api+"/v1/tenants/acme/connections/greenhouse", token, nil, &doc); err == nil && code == 200 &&
			doc.LastSync != nil && doc.LastSync.RunID == runID && doc.LastSync.Kind == events.RunAudit {
			break
		}
	}
	time.Sleep(time.Second)
}

// count returns the messages counted under key ("subject\ttype").
func (c *subjectCounts) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[strings.TrimSpace(key)]
}
