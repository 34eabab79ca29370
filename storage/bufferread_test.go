package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
)

// TestReadTwiceUnion: of two reads, each missing rows the other has (a buffer flush during
// one of them), the union has every row once, the second read's where both have it, in
// order; the trend keeps the last snapshot of each bucket across both.
func TestReadTwiceUnion(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	day1, day1later, day2 := at("2024-06-03 09:00:00"), at("2024-06-03 17:00:00"), at("2024-06-04 09:00:00")
	first := []UsageCountRow{
		{TS: day1, LicenseType: "basic", Users: 1},
		{TS: day2, LicenseType: "basic", Users: 9}, // the second read missed it
	}
	second := []UsageCountRow{
		{TS: day1, LicenseType: "basic", Users: 2}, // both have it: the second read's wins
		{TS: day1later, LicenseType: "basic", Users: 3},
	}
	type key struct {
		ts  time.Time
		typ string
	}
	all := unionBy(first, second, func(r UsageCountRow) key { return key{r.TS, r.LicenseType} },
		func(a, b UsageCountRow) int { return a.TS.Compare(b.TS) })
	assert.Equal(t, []UsageCountRow{
		{TS: day1, LicenseType: "basic", Users: 2},
		{TS: day1later, LicenseType: "basic", Users: 3},
		{TS: day2, LicenseType: "basic", Users: 9},
	}, all)
	assert.Equal(t, []UsageCountRow{
		{TS: day1later, LicenseType: "basic", Users: 3},
		{TS: day2, LicenseType: "basic", Users: 9},
	}, lastOfEachBucket(all, BucketDay))
	assert.Equal(t, []UsageCountRow{{TS: day2, LicenseType: "basic", Users: 9}}, lastOfEachBucket(all, BucketWeek),
		"3 and 4 June 2024 are one ISO week")
	assert.Equal(t, at("2024-06-03 00:00:00"), BucketStart(at("2024-06-09 23:59:59"), BucketWeek), "a Sunday's week starts on Monday")
	assert.Equal(t, at("2024-06-01 00:00:00"), BucketStart(day2, BucketMonth))

	runs := unionBy(
		[]SyncRunRow{{RunID: "a", StartedAt: day1}, {RunID: "c", StartedAt: day2}},
		[]SyncRunRow{{RunID: "b", StartedAt: day1, Users: 1}, {RunID: "a", StartedAt: day1, Users: 5}},
		keyOfRun, newestRunFirst)
	assert.Equal(t, []SyncRunRow{{RunID: "c", StartedAt: day2}, {RunID: "b", StartedAt: day1, Users: 1}, {RunID: "a", StartedAt: day1, Users: 5}}, runs)

	// A dropped connection is read again; a context's end is not.
	calls := 0
	flaky := func() ([]int, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("read tcp: use of closed network connection")
		}
		return []int{calls}, nil
	}
	one, two, err := readTwice(flaky)
	assert.NoError(t, err)
	assert.Equal(t, []int{2}, one)
	assert.Equal(t, []int{3}, two)
	calls = 0
	_, _, err = readTwice(func() ([]int, error) { calls++; return nil, context.Canceled })
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls)
}

// The reads of a sync (UserActivity, RefreshDailyActivity's, CurrentUsers before a row was
// given) are tried again after a retryable failure, up to readAttempts in all, and only then:
// not after a context's end, nor a server exception that says the query is wrong.
func TestRetryRead(t *testing.T) {
	tests := []struct {
		name  string
		errs  []error
		calls int
		ok    bool
	}{
		{"a pooled connection found closed", []error{errors.New("read tcp: use of closed network connection"), nil}, 2, true},
		{"closed twice", []error{errors.New("use of closed network connection"), errors.New("EOF"), nil}, 3, true},
		{"dropped three times", []error{errors.New("EOF"), errors.New("EOF"), errors.New("EOF")}, 3, false},
		{"the context ended", []error{context.Canceled}, 1, false},
		{"cut after rows were given", []error{final{errors.New("EOF")}}, 1, false},
		{"a wrong query", []error{&clickhouse.Exception{Code: 60}}, 1, false},
		{"too many parts", []error{&clickhouse.Exception{Code: 252}, nil}, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := retryRead(func() (int, error) {
				calls++
				return calls, tc.errs[calls-1]
			})
			assert.Equal(t, tc.calls, calls)
			assert.Equal(t, tc.ok, err == nil, err)
			if tc.ok {
				assert.Equal(t, tc.calls, v)
			}
		})
	}
}
