// Package connectors holds what every SaaS connector shares with the collector: the result of
// a connect-flow check and the app name. Each connector lives in a subpackage
// (connectors/greenhouse) and knows nothing of NATS or ClickHouse; the collector declares the
// small interfaces it needs of one where it uses them (greenhouseClient in
// collector/syncer.go).
package connectors

// AppGreenhouse is the app name of Greenhouse Recruiting: the app column of every ClickHouse
// row, the app field of every payload and a token of every NATS subject (docs/events.md,
// docs/schema.md).
const AppGreenhouse = "greenhouse"

// CheckName names a connect-flow check; a connector declares its own (greenhouse.CheckNames).
type CheckName string

// CheckStatus is the outcome of one connect-flow check.
type CheckStatus string

// Check statuses, as documented in the HTTP API.
const (
	CheckOK      CheckStatus = "ok"
	CheckFailed  CheckStatus = "failed"
	CheckSkipped CheckStatus = "skipped" // not run because an earlier check failed
)

// Check is the result of one connect-flow check. Code is a stable machine-readable string when
// Status is failed; Message says what is wrong and what the customer's admin should do.
type Check struct {
	Name    CheckName   `json:"name"`
	Status  CheckStatus `json:"status"`
	Code    string      `json:"code,omitempty"`
	Message string      `json:"message,omitempty"`
}

// Failed reports whether the check ran and failed.
func (c Check) Failed() bool { return c.Status == CheckFailed }
