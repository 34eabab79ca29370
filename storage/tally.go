package storage

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ActivityTally computes, from a tenant's audit events as they are handed to InsertAuditEvents,
// what UserActivity (userActivitySQL) and RefreshDailyActivity (dailyActivitySQL) would read
// back from audit_events once they are stored, so that a backfill, which sees every event it
// stores, need not read them back: those two reads of each backfill were ClickHouse's largest
// cost after merging (docs/performance.md, "Ninth session"). It mirrors the SQL to the row
// (TestActivityTallyMatchesTheQueries): seat uses only (SeatUse), times cut to whole seconds
// as DateTime stores them, an event counted once however often it is added (uniqExact of
// event_id), the newest event's type chosen by (event_time, event_id) as argMax does.
//
// It counts what a tenant's first backfill from from stores, so that every event stored is one
// it was given: the users' figures from the events at or after from (Unix seconds rounded up,
// as the queries bind times), the daily rows from every event of from's UTC day on (the daily
// read takes whole days, and Greenhouse may answer a window with events just before its start,
// docs/greenhouse-wire.md). Both are exact for [from, to) when no event at or after to was
// added (Spans). Past maxTallyEvents distinct events it gives up (Spans is then false, and the
// caller reads back): its memory is bounded. It is not safe for concurrent use.
type ActivityTally struct {
	from, firstDay, max int64 // max: the newest second added, from - 1 when none
	// seen are the events counted: a connector's id (32 hex digits) as its 16 bytes, which
	// the garbage collector need not scan; any other id as it is.
	seen      map[[16]byte]struct{}
	seenOther map[string]struct{}
	over      bool // more than maxTallyEvents
	users     map[int64]*tallyUser
	days      map[userDay]*tallyDay
}

// maxTallyEvents bounds the distinct events a tally keeps: 39 MB held at the cap
// (BenchmarkActivityTallyAtTheCap; a variable for the tests).
var maxTallyEvents = 1 << 20

type tallyUser struct {
	events         uint64
	at             int64
	lastID, lastTy string
}

type userDay struct{ user, day int64 } // day: Unix seconds / 86,400 (a UTC day, as toDate)

type tallyDay struct {
	events uint32
	at     int64
}

// NewActivityTally starts a tally of a first backfill from from.
func NewActivityTally(from time.Time) *ActivityTally {
	f := unix(from)
	return &ActivityTally{from: f, firstDay: floorDiv(f, 86400), max: f - 1, seen: map[[16]byte]struct{}{},
		seenOther: map[string]struct{}{}, users: map[int64]*tallyUser{}, days: map[userDay]*tallyDay{}}
}

// Add counts the event r, as stored, when it is a seat use not counted before.
func (t *ActivityTally) Add(r *AuditEventRow) {
	at := r.EventTime.Unix() // DateTime keeps whole seconds, cut towards the past
	day := floorDiv(at, 86400)
	if t.over || day < t.firstDay || !SeatUse(r.PerformerType, r.PerformerID, r.EventType, r.RequestType) || !t.first(r.EventID) {
		return
	}
	t.max = max(t.max, at)
	uid, _ := strconv.ParseInt(r.PerformerID, 10, 64) // SeatUse: 1..MaxInt64 in decimal
	k := userDay{uid, day}
	d := t.days[k]
	if d == nil {
		d = &tallyDay{}
		t.days[k] = d
	}
	d.events++
	d.at = max(d.at, at)
	if at < t.from {
		return // on from's day, before from: a daily figure, no user's
	}
	u := t.users[uid]
	if u == nil {
		u = &tallyUser{at: at - 1}
		t.users[uid] = u
	}
	u.events++
	if at > u.at || at == u.at && r.EventID > u.lastID {
		u.at, u.lastID, u.lastTy = at, r.EventID, r.EventType
	}
}

// first reports whether id is counted for the first time, and remembers it.
func (t *ActivityTally) first(id string) bool {
	if len(t.seen)+len(t.seenOther) >= maxTallyEvents {
		*t = ActivityTally{from: t.from, firstDay: t.firstDay, over: true} // let the maps go
		return false
	}
	var k [16]byte
	if len(id) == 32 {
		if _, err := hex.Decode(k[:], []byte(id)); err == nil && strings.ToLower(id) == id {
			if _, ok := t.seen[k]; ok {
				return false
			}
			t.seen[k] = struct{}{}
			return true
		}
	}
	if _, ok := t.seenOther[id]; ok {
		return false
	}
	t.seenOther[id] = struct{}{}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// Spans reports whether the tally started at from, kept every event and was given none at
// or after to, so that Users and the daily rows are what the queries give for [from, to).
func (t *ActivityTally) Spans(from, to time.Time) bool {
	return !t.over && unix(from) == t.from && t.max < unix(to)
}

// Users is UserActivity's answer for [from, to) when Spans(from, to): per user, in user id
// order.
func (t *ActivityTally) Users() []UserActivity {
	out := make([]UserActivity, 0, len(t.users))
	for uid, u := range t.users {
		out = append(out, UserActivity{UserID: uid, Events: u.events, LastEventAt: time.Unix(u.at, 0).UTC(), LastEventType: u.lastTy})
	}
	slices.SortFunc(out, func(a, b UserActivity) int { return cmp.Compare(a.UserID, b.UserID) })
	return out
}

// daily is dailyActivitySQL's answer for every UTC day the tally has events of.
func (t *ActivityTally) daily(tenant string, version uint64) []dailyRow {
	out := make([]dailyRow, 0, len(t.days))
	for k, d := range t.days {
		out = append(out, dailyRow{TenantID: tenant, UserID: k.user, Day: time.Unix(k.day*86400, 0).UTC(),
			Events: d.events, LastEventAt: time.Unix(d.at, 0).UTC(), Version: version})
	}
	slices.SortFunc(out, func(a, b dailyRow) int {
		return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.UserID, b.UserID))
	})
	return out
}

// WriteDailyActivity writes tenant's user_activity_daily rows of the tally's days, as
// RefreshDailyActivity would write them after reading audit_events when tenant's stored events
// are those the tally was given.
func (s *Store) WriteDailyActivity(ctx context.Context, tenant string, t *ActivityTally) error {
	if err := s.daily.write(ctx, t.daily(tenant, uint64(time.Now().UnixNano()))); err != nil {
		return fmt.Errorf("write daily activity of tenant %q: %w", tenant, err)
	}
	return nil
}
