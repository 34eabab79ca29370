package collector

import (
	"fmt"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

// The customer-facing messages of the collector's own codes, and the wording the collector
// puts around the connector's. This file is their one home; Greenhouse's codes have theirs in
// connectors/greenhouse/messages.go.

// checkCodeMessage is the message of a check that a sync (or the building of a tenant's
// client) failed with code.
func checkCodeMessage(code greenhouse.Code) string {
	switch code {
	case codeSealedSecretMismatch:
		return "The stored credential does not match this connection's client ID, admin user or endpoints (they were changed outside the API, or the connection was stored by a collector version that did not bind them), so it is not used. Reconnect with the client ID and secret."
	case codeEndpointNotAllowed:
		return "The connection's Greenhouse base URLs are not allowed by the collector's configuration, so the credential is not used. Reconnect without endpoint overrides, or ask the operator."
	}
	return greenhouse.SyncMessage(code)
}

// internalMessage is the message of a run that failed on the collector's own dependencies
// ("" for other codes): the raw cause (addresses, driver errors) stays in the operator's log.
func internalMessage(code greenhouse.Code) string {
	switch code {
	case codeStorageUnavailable:
		return "The collector's storage (ClickHouse) was unavailable; the sync is retried by itself."
	case codeNATSUnavailable:
		return "The collector's messaging (NATS) was unavailable; the sync is retried by itself."
	case codeClientUnavailable:
		return "The collector could not open the stored credential (its sealing key is not configured); the operator must restore the key, or the customer reconnect."
	}
	return ""
}

// overrideMessage is the message of a failed check against an overridden endpoint: never the
// endpoint's own reply.
func overrideMessage(code string) string {
	switch greenhouse.Code(code) {
	case greenhouse.CodeRateLimited, greenhouse.CodeUnavailable, greenhouse.CodeUnexpectedResponse:
		return fmt.Sprintf("The overridden endpoint did not answer as Greenhouse does (%s); its reply is not shown. Check the endpoint, then try again.", code)
	}
	return checkCodeMessage(greenhouse.Code(code))
}

// credentialUnusableMessage is the message of a credential the connector refused to build a
// client with (an empty or malformed field).
func credentialUnusableMessage(err error) string {
	return "the credential could not be used: " + err.Error()
}

// withoutReplies gives the failed checks of a connection with overridden endpoints the
// message of their code instead of the connector's, which can quote the endpoint's reply: an
// override must not turn the connect flow into a way of reading what answers at an address
// (docs/security.md).
func withoutReplies(checks []connectors.Check) []connectors.Check {
	out := make([]connectors.Check, len(checks))
	for i, c := range checks {
		if c.Status == connectors.CheckFailed {
			c.Message = overrideMessage(c.Code)
		}
		out[i] = c
	}
	return out
}
