package collector

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// applyActivity recomputes, from the stored events in [from, through), each user's newest
// activity and the daily activity of the days touched; users whose last activity advanced
// get a saas.usage.updated event and a new row, and every license holder's usage is
// re-evaluated for alerts. Only users in r.ids are considered when r.ids is non-empty.
func (s *syncer) applyActivity(ctx context.Context, tenant string, sc storedConnection, r activityRange, alerts *alertState) error {
	if !r.through.After(r.from) {
		return nil
	}
	byUser, err := s.activityOf(ctx, tenant, r)
	if err != nil {
		return err
	}
	through := r.through
	cp, now, params, err := s.judgedNow(ctx, tenant, sc, through)
	if err != nil {
		return err
	}
	version := uint64(now.UnixNano())
	users, readAt, err := s.usersOf(ctx, tenant)
	if err != nil {
		return fmt.Errorf("apply activity: %w", err)
	}
	// Sized for every active user's row and event (after a first backfill, most of a tenant's
	// users): grown by doubling, they were 1.5 of the 46 GB the collector allocated while 2,000
	// tenants onboarded (docs/performance.md, "Tenth session").
	rows := make([]storage.UserRow, 0, min(len(byUser), users.Len()))
	envs := make([]events.Envelope, 0, cap(rows))
	for r := range users.All {
		if a, ok := byUser[r.UserID]; ok && (r.LastActivityAt == nil || a.LastEventAt.After(*r.LastActivityAt)) {
			row, env, err := usageUpdated(tenant, r, a, version, now)
			if err != nil {
				return err
			}
			r = row
			rows, envs = append(rows, row), append(envs, env)
		}
		if r.Status == storage.StatusRemoved {
			continue
		}
		env, fire, err := alerts.judge(record(r, params), params, cp.ObservedSince, now, "")
		if err != nil {
			return err
		}
		if fire {
			envs = append(envs, env)
		}
	}
	if err := s.out.publish(ctx, envs); err != nil {
		return fmt.Errorf("publish usage events: %w", err)
	}
	idle(ctx, func() { err = s.out.stored(s.store.UpsertUsers(ctx, rows)) })
	if err != nil {
		return fmt.Errorf("store user activity: %w", err)
	}
	s.keepUsers(ctx, tenant, sc, users.Len(), func(yield func(storage.UserRow) bool) {
		for r := range users.All {
			if i, ok := slices.BinarySearchFunc(rows, r.UserID, func(w storage.UserRow, id int64) int { return cmp.Compare(w.UserID, id) }); ok {
				r = rows[i]
			}
			if !yield(r) {
				return
			}
		}
	}, readAt)
	return nil
}

// activityRange is what applyActivity applies: the activity of the events in [from, through),
// of the users in ids (all when empty); tally, when not nil, is the activity of every event
// stored in that range, counted as a tenant's first backfill stored them.
type activityRange struct {
	from, through time.Time
	ids           []int64
	tally         *storage.ActivityTally
}

// activityOf reads each user's activity in r from the stored events, by user, and (for all
// users: r.ids empty) refreshes the daily activity of the days it touches. A first backfill's
// tally spares both reads (they were ClickHouse's largest cost after merging,
// docs/performance.md, "Ninth session"): it gives what they would read.
func (s *syncer) activityOf(ctx context.Context, tenant string, r activityRange) (map[int64]storage.UserActivity, error) {
	if r.tally != nil && len(r.ids) == 0 && r.tally.Spans(r.from, r.through) {
		var err error
		idle(ctx, func() { err = s.store.WriteDailyActivity(ctx, tenant, r.tally) })
		if err := s.out.stored(err); err != nil {
			return nil, fmt.Errorf("write daily activity: %w", err)
		}
		return byUserID(r.tally.Users()), nil
	}
	acts, err := s.store.UserActivity(ctx, tenant, r.from, r.through, r.ids)
	if err != nil {
		return nil, internal(codeStorageUnavailable, fmt.Errorf("read user activity: %w", err))
	}
	if len(r.ids) == 0 {
		var days []time.Time
		for d := r.from.UTC().Truncate(24 * time.Hour); d.Before(r.through); d = d.Add(24 * time.Hour) {
			days = append(days, d)
		}
		// Its rows wait for a group commit flushed every second (storage, AuditFlushInterval):
		// the worker is given back meanwhile.
		var err error
		idle(ctx, func() { err = s.store.RefreshDailyActivity(ctx, tenant, days) })
		if err := s.out.stored(err); err != nil {
			return nil, fmt.Errorf("refresh daily activity: %w", err)
		}
	}
	return byUserID(acts), nil
}

func byUserID(acts []storage.UserActivity) map[int64]storage.UserActivity {
	byUser := make(map[int64]storage.UserActivity, len(acts))
	for _, a := range acts {
		byUser[a.UserID] = a
	}
	return byUser
}

// usageUpdated is a user's row with newer activity a, and its saas.usage.updated event.
func usageUpdated(tenant string, r storage.UserRow, a storage.UserActivity, version uint64, now time.Time) (storage.UserRow, events.Envelope, error) {
	prevAt := r.LastActivityAt
	at := a.LastEventAt.UTC()
	r.LastActivityAt = &at
	r.LastActivityType = a.LastEventType
	r.Version = version
	env, err := events.NewEnvelope(tenant, events.TypeUsageUpdated,
		fmt.Sprintf("%s:usage:%d:%d", tenant, r.UserID, at.Unix()), fmt.Sprintf("users/%d", r.UserID), now,
		events.UsageUpdated{TenantID: tenant, App: connectors.AppGreenhouse, UserID: r.UserID, LastActivityAt: at, LastEventType: a.LastEventType,
			PreviousActivityAt: prevAt, EventsInPoll: int(a.Events)})
	return r, env, err
}
