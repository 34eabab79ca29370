package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seatwatch/greenhouse-collector/events"
)

// TestJudgeLeases: renewals extend a tenure, a takeover is correct only after a delete or the
// holder's last write plus the TTL, and the revisions not recorded are counted.
func TestJudgeLeases(t *testing.T) {
	ttl := 5 * time.Second
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	put := func(seq uint64, owner string, s float64) revision {
		return revision{Seq: seq, Key: "shard.1", Op: "PUT", Owner: owner, Time: at(s)}
	}
	tests := []struct {
		name       string
		revs       []revision
		violations int
		takeovers  int
		unseen     int
		tenures    int
	}{
		{name: "renewals", revs: []revision{put(1, "r1", 0), put(2, "r1", 1.6), put(3, "r1", 3.3)}, tenures: 1},
		{name: "taken after expiry", revs: []revision{put(1, "r1", 0), put(2, "r1", 1.6), put(3, "r2", 6.6)}, takeovers: 1, tenures: 2},
		{name: "taken while held", revs: []revision{put(1, "r1", 0), put(2, "r1", 1.6), put(3, "r2", 6.5)}, violations: 1, takeovers: 1, tenures: 2},
		{name: "released, then taken", revs: []revision{put(1, "r1", 0), {Seq: 2, Key: "shard.1", Op: "DEL", Time: at(1)}, put(3, "r2", 1.2)}, takeovers: 1, tenures: 2},
		{name: "re-taken by its holder after expiry", revs: []revision{put(1, "r1", 0), put(2, "r1", 9)}, takeovers: 1, tenures: 2},
		{name: "a revision missing", revs: []revision{put(1, "r1", 0), put(3, "r1", 1.6)}, unseen: 1, tenures: 1},
		{name: "other keys count for the sequence only", revs: []revision{put(1, "r1", 0), {Seq: 2, Key: "replica.r1", Op: "PUT", Owner: "r1", Time: at(0.1)}, put(3, "r1", 1.6)}, tenures: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := judgeLeases(tc.revs, ttl)
			assert.Len(t, rep.violations, tc.violations, rep.violations)
			assert.Len(t, rep.takeovers, tc.takeovers)
			assert.Equal(t, tc.unseen, rep.unseen)
			assert.Len(t, rep.tenures["shard.1"], tc.tenures)
		})
	}
}

// TestCheckLateness: a run is measured from the latest end of an earlier run of its tenant and
// kind, whichever replica ran it; a replay under the same run id counts (the stream keeps only
// the first summary of a run id, the case a CI run failed on), and a run more than the TTL late
// is counted.
func TestCheckLateness(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 59, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	audit := func(replica, id string, start, end float64) run {
		return run{Tenant: "crash2", Replica: replica, RunID: id, Kind: events.RunAudit, Status: events.RunSucceeded, Start: at(start), End: at(end)}
	}
	o := options{leaseTTL: 5 * time.Second, usersEvery: time.Minute, auditEvery: 30 * time.Second}
	tests := []struct {
		name string
		runs []run
		late int
	}{
		{name: "on time", runs: []run{audit("r1", "a", 0, 1), audit("r1", "b", 33, 34)}},
		{name: "the TTL late", runs: []run{audit("r1", "a", 0, 1), audit("r1", "b", 39, 40)}},
		{name: "later than the TTL", runs: []run{audit("r1", "a", 0, 1), audit("r1", "b", 39.1, 40)}, late: 1},
		{name: "after a replay by the new holder", runs: []run{
			audit("r3", "d687", 2.6, 3.6), audit("r1", "d687", 14, 15), audit("r1", "4eca", 46.4, 46.4)}},
		{name: "ends out of order", runs: []run{
			audit("r1", "a", 0, 20), audit("r2", "b", 1, 2), audit("r1", "c", 53, 54)}},
		{name: "tenants apart", runs: []run{
			audit("r1", "a", 0, 1), {Tenant: "other", Kind: events.RunAudit, Start: at(2), End: at(3)}, audit("r1", "b", 45, 46)}, late: 1},
		{name: "kinds apart", runs: []run{
			audit("r1", "a", 0, 1), {Tenant: "crash2", Kind: events.RunUsers, Start: at(2), End: at(3)}, audit("r1", "b", 45, 46)}, late: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			assert.Equal(t, tc.late, checkLateness(tc.runs, o, &out), out.String())
		})
	}
}
