package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
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
