package events

import "strings"

// Types lists every event type of the contract, in documentation order.
func Types() []Type {
	return []Type{
		TypeUserChanged, TypeUsageUpdated,
		TypeAlertLicenseInactive, TypeAlertLicenseActive, TypeAlertLicenseFreed,
		TypeConnectionChanged, TypeSyncCompleted,
		TypeAlertSeatsExceeded, TypeAlertSeatsUnused, TypePolicyChanged,
		TypeActionRequested, TypeActionCompleted,
	}
}

// NewData returns a pointer to a zero value of the data type of t (for example *UserChanged
// for TypeUserChanged), to decode an envelope's Data into, or nil for an unknown type.
func NewData(t Type) any {
	switch t {
	case TypeUserChanged:
		return new(UserChanged)
	case TypeUsageUpdated:
		return new(UsageUpdated)
	case TypeAlertLicenseInactive, TypeAlertLicenseActive, TypeAlertLicenseFreed:
		return new(Alert)
	case TypeConnectionChanged:
		return new(ConnectionChanged)
	case TypeSyncCompleted:
		return new(SyncSummary)
	case TypeAlertSeatsExceeded, TypeAlertSeatsUnused:
		return new(SeatAlert)
	case TypePolicyChanged:
		return new(PolicyChanged)
	case TypeActionRequested:
		return new(ActionRequested)
	case TypeActionCompleted:
		return new(ActionCompleted)
	}
	return nil
}

// ExampleName returns the base name of the example file documenting t under testdata/events:
// "saas.alert.license_freed" gives "alert_license_freed.json".
func ExampleName(t Type) string {
	return strings.ReplaceAll(strings.TrimPrefix(string(t), "saas."), ".", "_") + ".json"
}
