package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
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
// It counts events at or after from (Unix seconds rounded up, as the queries bind times).
// Users is exact for [from, to) when no event at or after to was added (Spans); the daily rows
// when, besides, the tenant has nothing stored before from on from's day (a first backfill:
// collector/sync_audit.go). It is not safe for concurrent use.
type ActivityTally struct {
	from, max int64 // max: the newest second added, from - 1 when none
	seen      map[string]struct{}
	users     map[int64]*tallyUser
	days      map[userDay]*tallyDay
}

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

// NewActivityTally starts a tally of the events at or after from.
func NewActivityTally(from time.Time) *ActivityTally {
	f := unix(from)
	return &ActivityTally{from: f, max: f - 1, seen: map[string]struct{}{},
		users: map[int64]*tallyUser{}, days: map[userDay]*tallyDay{}}
}

// Add counts the event r, as stored, when it is a seat use at or after the tally's start and
// not counted before.
func (t *ActivityTally) Add(r *AuditEventRow) {
	at := r.EventTime.Unix() // DateTime keeps whole seconds, cut towards the past
	if at < t.from || !SeatUse(r.PerformerType, r.PerformerID, r.EventType, r.RequestType) {
		return
	}
	if _, ok := t.seen[r.EventID]; ok {
		return
	}
	t.seen[r.EventID] = struct{}{}
	t.max = max(t.max, at)
	uid, _ := strconv.ParseInt(r.PerformerID, 10, 64) // SeatUse: 1..MaxInt64 in decimal
	u := t.users[uid]
	if u == nil {
		u = &tallyUser{at: at - 1}
		t.users[uid] = u
	}
	u.events++
	if at > u.at || at == u.at && r.EventID > u.lastID {
		u.at, u.lastID, u.lastTy = at, r.EventID, r.EventType
	}
	k := userDay{uid, floorDiv(at, 86400)}
	d := t.days[k]
	if d == nil {
		d = &tallyDay{}
		t.days[k] = d
	}
	d.events++
	d.at = max(d.at, at)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// Spans reports whether the tally started at from and every event added lies before to, so
// that Users is what UserActivity gives for [from, to).
func (t *ActivityTally) Spans(from, to time.Time) bool {
	return unix(from) == t.from && t.max < unix(to)
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

// daily is dailyActivitySQL's answer for every UTC day the tally has events of, given that
// nothing of the first day before from is stored (Spans).
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
// are those the tally saw: its first day is counted from the tally's start.
func (s *Store) WriteDailyActivity(ctx context.Context, tenant string, t *ActivityTally) error {
	if err := s.daily.write(ctx, t.daily(tenant, uint64(time.Now().UnixNano()))); err != nil {
		return fmt.Errorf("write daily activity of tenant %q: %w", tenant, err)
	}
	return nil
}
