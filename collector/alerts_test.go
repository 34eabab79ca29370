package collector

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

func TestAlertStateTransitionsFireOnce(t *testing.T) {
	rec := func(licensed bool, usage string) events.LicenseRecord {
		return events.LicenseRecord{TenantID: "acme", UserID: 7, Licensed: licensed, Usage: usage}
	}
	steps := []struct {
		name  string
		rec   events.LicenseRecord
		alert string // "" = none
		seq   uint64
	}{
		{"unknown at first", rec(true, storage.UsageUnknown), "", 0},
		{"becomes inactive", rec(true, storage.UsageInactive), AlertLicenseInactive, 1},
		{"still inactive: no repeat", rec(true, storage.UsageInactive), "", 0},
		{"unknown does not reset", rec(true, storage.UsageUnknown), "", 0},
		{"acts again", rec(true, storage.UsageActive), AlertLicenseActive, 2},
		{"still active: no repeat", rec(true, storage.UsageActive), "", 0},
		{"inactive again", rec(true, storage.UsageInactive), AlertLicenseInactive, 3},
		{"loses license: silent unflag", rec(false, ""), "", 0},
		{"licensed and active again: nothing to resume", rec(true, storage.UsageActive), "", 0},
	}
	var s alertState
	for _, st := range steps {
		tr, fired := s.evaluate(st.rec)
		if st.alert == "" {
			assert.False(t, fired, st.name)
			continue
		}
		require.True(t, fired, st.name)
		assert.Equal(t, st.alert, tr.alert, st.name)
		assert.Equal(t, st.seq, tr.seq, st.name)
	}
}

func TestAlertStateOnlyRemembersAlertedUsers(t *testing.T) {
	var s alertState
	for id := int64(1); id <= 1000; id++ {
		s.evaluate(events.LicenseRecord{UserID: id, Licensed: true, Usage: storage.UsageActive})
	}
	assert.Empty(t, s.Users, "active users leave no trace in the alert state")
	s.evaluate(events.LicenseRecord{UserID: 5, Licensed: true, Usage: storage.UsageInactive})
	assert.Len(t, s.Users, 1)
}
