package storage

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A tally keeps at most maxTallyEvents events and then gives up (Spans false: the caller reads
// back); a connector id is kept as its bytes, and the same digits in capitals are another id.
func TestActivityTallyBounds(t *testing.T) {
	from := time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	id := strings.Repeat("ab", 16)
	ev := func(id string) *AuditEventRow {
		return &AuditEventRow{EventID: id, EventTime: from.Add(time.Minute), EventType: "user_logged_in", PerformerType: "user", PerformerID: "7"}
	}
	tally := NewActivityTally(from)
	for _, id := range []string{id, strings.ToUpper(id), id, "short"} {
		tally.Add(ev(id))
	}
	assert.Len(t, tally.seen, 1)
	assert.Len(t, tally.seenOther, 2, "the capitals and the short id")
	assert.Equal(t, uint64(3), tally.Users()[0].Events)
	assert.True(t, tally.Spans(from, to))

	defer func(n int) { maxTallyEvents = n }(maxTallyEvents)
	maxTallyEvents = 3
	tally.Add(ev("fourth"))
	assert.False(t, tally.Spans(from, to), "past maxTallyEvents")
	assert.Nil(t, tally.seen, "its memory let go")
	tally.Add(ev("fifth"))
	assert.False(t, tally.Spans(from, to))
}

// BenchmarkActivityTallyAtTheCap fills a tally to maxTallyEvents (2,000 users, one event a
// second) and reports the heap it holds: the bound docs/schema.md quotes.
func BenchmarkActivityTallyAtTheCap(b *testing.B) {
	from := time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC)
	rows := make([]AuditEventRow, maxTallyEvents-1)
	for i := range rows {
		rows[i] = AuditEventRow{EventID: fmt.Sprintf("%032x", i), EventTime: from.Add(time.Duration(i) * time.Second),
			EventType: "user_logged_in", PerformerType: "user", PerformerID: strconv.Itoa(1 + i%2000)}
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tally := NewActivityTally(from)
		for i := range rows {
			tally.Add(&rows[i])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-held")
		runtime.KeepAlive(tally)
	}
}
