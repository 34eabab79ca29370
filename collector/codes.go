package collector

import (
	"errors"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

// The collector's own codes. They extend the connector's vocabulary (greenhouse.Code): a run
// or a check shows either kind (docs/api.md); their messages are in messages.go.
const (
	// Codes of a run that failed on the collector's own dependencies rather than on
	// Greenhouse. They appear in last_sync, saas.sync.completed and sync_runs, never on a
	// check: the customer's admin can do nothing about them, the operator can.
	codeStorageUnavailable greenhouse.Code = "storage_unavailable" // ClickHouse read or write failed
	codeNATSUnavailable    greenhouse.Code = "nats_unavailable"    // a publish or a KV read or write failed
	codeClientUnavailable  greenhouse.Code = "client_unavailable"  // the stored secret cannot be opened (sealing key gone)

	// Codes of a connection the collector refuses to use, on its credentials check
	// (docs/api.md, docs/security.md).
	//
	// codeEndpointNotAllowed: a base URL override names a host outside allowed-endpoint-hosts
	// or one that is (or resolves to) an internal address, or, for a stored connection, one
	// the running configuration no longer allows.
	codeEndpointNotAllowed greenhouse.Code = "endpoint_not_allowed"
	// codeSealedSecretMismatch: the stored secret does not open with the connection's tenant,
	// client id, admin user and endpoints (they were changed in the state store, or the
	// connection was stored by a version that did not bind them).
	codeSealedSecretMismatch greenhouse.Code = "sealed_secret_mismatch"
)

// internalError marks a failure of ClickHouse or NATS inside a sync.
type internalError struct {
	code greenhouse.Code
	err  error
}

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// internal wraps err (nil stays nil) as a failure of the collector's own dependency.
func internal(code greenhouse.Code, err error) error {
	if err == nil {
		return nil
	}
	var ie *internalError
	if errors.As(err, &ie) {
		return err
	}
	return &internalError{code: code, err: err}
}

// internalCode returns the code of an internalError in err's chain, or "".
func internalCode(err error) greenhouse.Code {
	var ie *internalError
	if errors.As(err, &ie) {
		return ie.code
	}
	return ""
}
