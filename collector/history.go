package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// userChangeRow is the user_changes row of a user's new revision: what changed and the state
// after it, at the users sync that saw it (docs/schema.md, user_changes).
func userChangeRow(row storage.UserRow, changed []string, at time.Time) storage.UserChangeRow {
	return storage.UserChangeRow{
		TenantID: row.TenantID, App: row.App, UserID: row.UserID, Revision: row.Revision, ChangedAt: at,
		Changed: changed, Status: row.Status, LicenseType: row.LicenseType, SiteAdmin: row.SiteAdmin,
		ServiceAccount: row.ServiceAccount, Name: row.Name, Email: row.Email, Version: row.Version,
	}
}

// storage returns p as the storage package's usage parameters (the same rule in SQL).
func (p UsageParams) storage() storage.UsageParams {
	return storage.UsageParams{Now: p.Now, InactiveAfterDays: p.InactiveAfterDays, CoverageStart: p.CoverageStart}
}
