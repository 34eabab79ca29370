package main

// The actions mode of the crash test (deploy/local/crash-actions-test.sh, docs/reliability.md,
// "Actions and crashes"): a reclaim action of every inactive license holder of crash1 runs
// across SIGKILLs of its replica; -verify-actions then checks that no completed request was
// sent again and no outcome was lost.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// actionOrg is the organisation the actions mode reclaims seats of.
const actionOrg = "crash1"

// reclaimBody is the action the script posts after every start of the replica (the same
// idempotency key each time: one action): every inactive license holder of org as the truth
// has it, the admin user (refused by a guard) and an id Greenhouse does not have (refused).
func reclaimBody(org *simulator.Org) map[string]any {
	truth := org.Truth()
	var ids []int64
	for id := range expectedInactive(truth, time.Now()) {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	ids = append(ids, org.Credentials().AdminUserID, 999999999)
	return map[string]any{"type": "deactivate", "user_ids": ids, "requested_by": "crash-test", "reason": "reclaim across kills",
		"idempotency_key": "crash-reclaim-1"}
}

// verifyActions checks the action the script saved (-action-file: its final GET answer)
// against the simulator's accepted writes and truth, the actions rows and the stream.
func verifyActions(ctx context.Context, o options, out io.Writer) (bool, error) {
	raw, err := os.ReadFile(o.actionFile)
	if err != nil {
		return false, err
	}
	var act collector.ActionView
	if err := json.Unmarshal(raw, &act); err != nil {
		return false, fmt.Errorf("decode %s: %w", o.actionFile, err)
	}
	var writes []string
	if err := getJSON(ctx, o.simURL+"/writes/"+actionOrg, &writes); err != nil {
		return false, err
	}
	var truth simulator.Truth
	if err := getJSON(ctx, o.simURL+"/truth/"+actionOrg, &truth); err != nil {
		return false, err
	}
	rep := &report{out: out, shown: map[string]int{}}
	done := checkOutcomes(rep, act, writes, truth)
	if err := checkActionRecords(ctx, o, rep, act); err != nil {
		return false, err
	}
	fmt.Fprintf(out, "action %s: %d users, %v; %d deactivations sent, each once: %d done\n",
		act.ActionID, len(act.Users), act.Counts, len(writes), done)
	if rep.mismatches > 0 {
		fmt.Fprintf(out, "verify-actions: FAILED with %d mismatches\n", rep.mismatches)
		return false, nil
	}
	fmt.Fprintln(out, "verify-actions: OK, no request repeated and no outcome lost")
	return true, nil
}

// checkOutcomes: the action completed, every user decided; every done user written exactly
// once and deactivated in the truth; nobody else written.
func checkOutcomes(rep *report, act collector.ActionView, writes []string, truth simulator.Truth) int {
	if act.Status != "completed" {
		rep.fail(actionOrg, "action status %q, want completed", act.Status)
	}
	sent := map[int64]int{}
	for _, w := range writes {
		verb, id, _ := strings.Cut(w, " ")
		n, _ := strconv.ParseInt(id, 10, 64)
		if verb != "deactivate" {
			rep.fail(actionOrg, "unexpected write %q", w)
		}
		sent[n]++
	}
	status := map[int64]string{}
	for _, u := range truth.Users {
		status[u.ID] = u.Status
	}
	done := 0
	for _, u := range act.Users {
		switch {
		case u.Outcome == "pending" || u.Outcome == "":
			rep.fail(actionOrg, "user %d has no outcome", u.UserID)
		case u.Outcome == "done":
			done++
			if sent[u.UserID] != 1 || status[u.UserID] != "deactivated" {
				rep.fail(actionOrg, "user %d done: sent %d times, status %q", u.UserID, sent[u.UserID], status[u.UserID])
			}
		case sent[u.UserID] != 0:
			rep.fail(actionOrg, "user %d %s but sent %d times", u.UserID, u.Outcome, sent[u.UserID])
		}
		delete(sent, u.UserID)
	}
	for id, n := range sent {
		rep.fail(actionOrg, "user %d is not in the action but was sent %d times", id, n)
	}
	return done
}

// checkActionRecords: one actions row per user with the API's outcome, one
// saas.action.requested and one saas.action.completed per user, no id twice.
func checkActionRecords(ctx context.Context, o options, rep *report, act collector.ActionView) error {
	store, err := storage.Open(ctx, storage.Config{Addr: []string{o.chAddr}, Database: o.chDatabase, Logger: zerolog.Nop()})
	if err != nil {
		return fmt.Errorf("open ClickHouse: %w", err)
	}
	defer store.Close()
	rows, err := store.ActionOutcomes(ctx, actionOrg, "greenhouse", act.ActionID)
	if err != nil {
		return err
	}
	byUser := map[int64]string{}
	for _, r := range rows {
		byUser[r.UserID] = r.Outcome
	}
	envs, err := readStream(ctx, filepath.Join(o.dataDir, "nats"))
	if err != nil {
		return err
	}
	ids := map[string]int{}
	for _, e := range envs {
		if strings.HasPrefix(e.Type, "saas.action.") {
			ids[e.ID]++
		}
	}
	prefix := actionOrg + ":action:" + act.ActionID + ":"
	if ids[prefix+"requested"] != 1 {
		rep.fail(actionOrg, "saas.action.requested %d times", ids[prefix+"requested"])
	}
	for _, u := range act.Users {
		if byUser[u.UserID] != u.Outcome {
			rep.fail(actionOrg, "user %d: actions row %q, API %q", u.UserID, byUser[u.UserID], u.Outcome)
		}
		if n := ids[prefix+"user:"+strconv.FormatInt(u.UserID, 10)]; n != 1 {
			rep.fail(actionOrg, "user %d: saas.action.completed %d times", u.UserID, n)
		}
	}
	if len(rows) != len(act.Users) {
		rep.fail(actionOrg, "%d actions rows for %d users", len(rows), len(act.Users))
	}
	return nil
}
