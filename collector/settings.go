package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// tenantSettings are a connection's effective settings: its own, or the configuration's
// defaults where it has none.
type tenantSettings struct {
	inactiveAfterDays int
	usersEvery        time.Duration
	auditEvery        time.Duration
}

// settingsOf returns the effective settings of a connection.
func (c Config) settingsOf(doc events.Connection) tenantSettings {
	st := tenantSettings{inactiveAfterDays: doc.Settings.InactiveAfterDays}
	if st.inactiveAfterDays <= 0 {
		st.inactiveAfterDays = c.DefaultInactiveAfterDays
	}
	var err error
	st.usersEvery, err = time.ParseDuration(doc.Settings.UsersInterval)
	if err != nil || st.usersEvery <= 0 {
		st.usersEvery = c.DefaultUsersInterval
	}
	st.auditEvery, err = time.ParseDuration(doc.Settings.AuditInterval)
	if err != nil || st.auditEvery <= 0 {
		st.auditEvery = c.DefaultAuditInterval
	}
	return st
}

// usageParams returns the parameters of the usage rule (storage/usage.go) for a tenant now.
//
// activityThrough is the time through which users' activity has been applied from the stored
// events (zero: not yet). Usage is judged as of then, never later: events stored but not yet
// applied (a crash between the two steps) must not make anyone look inactive.
func usageParams(st tenantSettings, cp checkpoint, now, activityThrough time.Time) storage.UsageParams {
	p := storage.UsageParams{Now: now, InactiveAfterDays: st.inactiveAfterDays, CoverageStart: cp.CoverageStart}
	switch {
	case p.CoverageStart.IsZero():
	case activityThrough.IsZero():
		p.CoverageStart = now // the backfill is stored, its activity not applied: too early to judge
	case activityThrough.Before(now):
		p.Now = activityThrough
	}
	return p
}
