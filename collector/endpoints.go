package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
)

// allowedHosts is the parsed allowed-endpoint-hosts setting.
type allowedHosts struct {
	any     bool
	domains []string // lower case, without a trailing dot
	addrs   []netip.Addr
}

// parseAllowedHosts parses a comma-separated list of domains, IP addresses and "*".
func parseAllowedHosts(spec string) (allowedHosts, error) {
	var h allowedHosts
	for _, e := range strings.Split(spec, ",") {
		e = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(e), "."))
		switch {
		case e == "":
		case e == "*":
			h.any = true
		default:
			if a, err := netip.ParseAddr(e); err == nil {
				h.addrs = append(h.addrs, a.Unmap())
				continue
			}
			if strings.ContainsAny(e, "/:@*?# ") {
				return h, fmt.Errorf("allowed-endpoint-hosts: %q is not a domain, an IP address or *", e)
			}
			h.domains = append(h.domains, e)
		}
	}
	return h, nil
}

// allows reports whether host (a URL's Hostname) is one of the allowed hosts: an equal IP
// address, or a domain equal to or under an allowed one.
func (h allowedHosts) allows(host string) bool {
	if h.any {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(host); err == nil {
		for _, b := range h.addrs {
			if a.Unmap() == b {
				return true
			}
		}
		return false
	}
	for _, d := range h.domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// overridden reports whether a connection names base URLs of its own.
func overridden(ep *events.Endpoints) bool { return ep != nil && *ep != (events.Endpoints{}) }

// endpointFields are a connection's base URL overrides with their request field names.
func endpointFields(ep events.Endpoints) []struct{ name, v string } {
	return []struct{ name, v string }{{"endpoints.auth", ep.Auth}, {"endpoints.harvest", ep.Harvest}, {"endpoints.audit_log", ep.AuditLog}}
}

// validateEndpoint checks the form of one base URL override and whether the configuration
// accepts overrides and its scheme: a refusal here is the request's fault (400).
func (c Config) validateEndpoint(field, raw string) *apiError {
	if raw == "" {
		return nil
	}
	if !c.AllowEndpointOverride {
		return &apiError{Code: codeOverrideDisabled, Field: field, Message: "Greenhouse base URL overrides are disabled by the operator"}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return &apiError{Code: codeInvalidField, Field: field, Message: "must be an absolute URL such as https://harvest.greenhouse.io"}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return &apiError{Code: codeInvalidField, Field: field, Message: "must not carry credentials, a query or a fragment"}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !c.AllowInsecureEndpoints {
			return &apiError{Code: codeInsecureEndpoint, Field: field, Message: "plain http is refused; the operator has not enabled insecure endpoints"}
		}
	default:
		return &apiError{Code: codeInvalidField, Field: field, Message: "scheme must be https"}
	}
	return nil
}

// endpointsRefused checks a connection's overrides against the running configuration: their
// form and scheme (validateEndpoint), the allowed hosts, and the addresses their hosts
// resolve to now. The connect flow and every build of a tenant's client call it, so a stored
// endpoint is judged by today's settings, not by those it was stored under. A failed name
// resolution is no refusal (the connector reports it as greenhouse_unavailable, and its
// dialer checks every address it connects to anyway).
func (c Config) endpointsRefused(ctx context.Context, ep *events.Endpoints) *apiError {
	if !overridden(ep) {
		return nil
	}
	hosts, err := parseAllowedHosts(c.AllowedEndpointHosts)
	if err != nil {
		return &apiError{Code: apiCode(codeEndpointNotAllowed), Message: err.Error()}
	}
	for _, f := range endpointFields(*ep) {
		if f.v == "" {
			continue
		}
		if e := c.validateEndpoint(f.name, f.v); e != nil {
			return e
		}
		u, _ := url.Parse(f.v) // validateEndpoint parsed it
		host := u.Hostname()
		if !hosts.allows(host) {
			return &apiError{Code: apiCode(codeEndpointNotAllowed), Field: f.name,
				Message: fmt.Sprintf("%s: the host %q is outside the hosts the operator allows for overrides (allowed-endpoint-hosts)", f.name, host)}
		}
		err := greenhouse.CheckHost(ctx, host, c.UnsafeAllowLoopbackEndpointsForTests)
		var ae *greenhouse.AddressError
		if errors.As(err, &ae) {
			return &apiError{Code: apiCode(codeEndpointNotAllowed), Field: f.name,
				Message: fmt.Sprintf("%s: the host %q is or resolves to a %s address, which the collector never connects to", f.name, host, ae.Class)}
		}
	}
	return nil
}

// secretBinding is the authenticated data a connection's client secret is sealed with: the
// tenant, the client id, the admin user and the base URLs it was stored with. A change to any
// of them in the state store (a local process writing to NATS, a compromised NATS) makes the
// secret unopenable, so a rewritten connection never sends the secret anywhere
// (sealed_secret_mismatch, docs/security.md).
//
// Secrets sealed before this binding (bound to the tenant id alone) do not open either, and
// their connections must be reconnected. Accepting the old form, even only where the stored
// endpoints are the defaults, would accept a rewritten client id or admin user that nothing
// can tell from the original; the one safe upgrade is the customer's own reconnect.
func secretBinding(tenant string, doc events.Connection) string {
	var ep events.Endpoints
	if doc.Endpoints != nil {
		ep = *doc.Endpoints
	}
	b, _ := json.Marshal([]any{"greenhouse-connection/v2", tenant, doc.ClientID, doc.AdminUserID, ep.Auth, ep.Harvest, ep.AuditLog})
	return string(b)
}
