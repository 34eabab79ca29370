package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
