package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestWindowLateness: a routine run is late by its start − the previous run's end − 1.1
// intervals; a first sync tried again after a failure is not a routine run, whenever it
// starts.
func TestWindowLateness(t *testing.T) {
	runs := []run{
		{tenant: "a", kind: "audit", status: "failed", started: 0, finished: 10},         // first sync, failed
		{tenant: "a", kind: "audit", status: "succeeded", started: 900, finished: 950},   // tried again, 890 s later
		{tenant: "a", kind: "audit", status: "succeeded", started: 1280, finished: 1281}, // 330 s after: on time
		{tenant: "a", kind: "audit", status: "succeeded", started: 1620, finished: 1621}, // 339 s after: 9 s late
		{tenant: "b", kind: "audit", status: "succeeded", started: 5, finished: 20},
		{tenant: "b", kind: "audit", status: "succeeded", started: 351, finished: 352}, // 331 s after: 1 s, tolerated
	}
	firstDone := map[string]int64{"a": 950, "b": 20}
	w := window(runs, firstDone, "audit", 300, 0, 2000)
	assert.Equal(t, int64(6), w.count)
	assert.Equal(t, int64(1), w.failed)
	assert.Equal(t, []float64{0, 1, 9}, w.late)
	assert.Equal(t, int64(1), w.lateRuns)
	// A tenant never onboarded has no routine run.
	w = window(runs[:2], map[string]int64{}, "audit", 300, 0, 2000)
	assert.Empty(t, w.late)
}
