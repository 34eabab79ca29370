// Package collector is the service: tenants and their connections, scheduling and ownership
// across replicas, the sync pipeline (connector → derivation → events and storage), usage
// derivation and alerts, and the HTTP API used by the dashboard backend and the connect flow.
//
// Service wires four types: connections (connections.go: the connection documents, their
// compare-and-set updates and outbox), the syncer (syncer.go: runs through small interfaces
// of Greenhouse, ClickHouse and NATS), the scheduler (scheduler.go) and the api (api.go). Where
// a new check, run kind or route goes: docs/architecture.md, "Inside the collector".
package collector

import (
	"fmt"
)

// MaxTenantIDLen is the longest tenant ID accepted.
const MaxTenantIDLen = 64

// ValidateTenantID checks that id is 1 to 64 characters of [A-Za-z0-9_-], so that it is safe
// as a NATS subject token, a KV key part and a ClickHouse value.
func ValidateTenantID(id string) error {
	if id == "" {
		return fmt.Errorf("tenant_id is empty")
	}
	if len(id) > MaxTenantIDLen {
		return fmt.Errorf("tenant_id is %d characters long, at most %d allowed", len(id), MaxTenantIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("tenant_id has the character %q at position %d; only A-Z, a-z, 0-9, '_' and '-' are allowed", c, i)
		}
	}
	return nil
}
