package collector

// License types (docs/events.md, saas.user.changed).
const (
	LicenseSiteAdmin = "site_admin"
	LicenseJobAdmin  = "job_admin"
	LicenseBasic     = "basic"
)

// LicenseType derives a user's license type: site_admin if the user is a Site Admin, else
// job_admin if the user holds any job or future-job permission, else basic.
func LicenseType(siteAdmin, hasJobPermission bool) string {
	switch {
	case siteAdmin:
		return LicenseSiteAdmin
	case hasJobPermission:
		return LicenseJobAdmin
	default:
		return LicenseBasic
	}
}
