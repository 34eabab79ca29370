package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// CloudEvents attribute values the collector always uses.
const (
	SpecVersion     = "1.0"
	DataContentType = "application/json"
	// MaxIDLength bounds an event id (it is also the Nats-Msg-Id).
	MaxIDLength = 256
	// MaxTenantLength bounds a tenant id (it is a NATS subject token).
	MaxTenantLength = 64
)

// ErrInvalidEnvelope is returned (wrapped) by NewEnvelope and Publish for an envelope that
// cannot be published: bad tenant, id, type, subject or time.
var ErrInvalidEnvelope = errors.New("invalid event envelope")

// Envelope is a CloudEvents 1.0 event in structured JSON mode, as published on the SAAS stream.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`     // "1.0"
	ID              string          `json:"id"`              // deterministic, = Nats-Msg-Id
	Source          string          `json:"source"`          // "/tenants/{tenant}/greenhouse"
	Type            Type            `json:"type"`            // one of the Type constants
	Subject         string          `json:"subject"`         // e.g. "users/123", "connection", "sync/<run_id>"
	Time            time.Time       `json:"time"`            // when the change happened or was detected
	DataContentType string          `json:"datacontenttype"` // "application/json"
	Data            json.RawMessage `json:"data"`            // the payload of Type
	Tenant          string          `json:"-"`               // for the NATS subject
}

// Subject returns the NATS subject an event of type t for tenant is published under:
// "saas.{tenant}.greenhouse.{t.Topic()}".
func Subject(tenant string, t Type) string {
	return "saas." + tenant + "." + connectors.AppGreenhouse + "." + t.Topic()
}

// Source returns the CloudEvents source of a tenant's events: "/tenants/{tenant}/greenhouse".
func Source(tenant string) string {
	return "/tenants/" + tenant + "/" + connectors.AppGreenhouse
}

// NewEnvelope builds the envelope of one event: data is encoded as JSON, at is stored in UTC.
// id must be deterministic (the same change always gets the same id) because it is the
// Nats-Msg-Id the server deduplicates on. It returns an error wrapping ErrInvalidEnvelope when
// tenant is not 1-64 characters of [A-Za-z0-9_-], id is empty, longer than 256 bytes or holds
// whitespace, t is not a known type, subject is empty or at is zero; and an error when data
// cannot be encoded.
func NewEnvelope(tenant string, t Type, id, subject string, at time.Time, data any) (Envelope, error) {
	if err := validateEvent(tenant, t, id, subject, at); err != nil {
		return Envelope{}, fmt.Errorf("new envelope %q: %w", id, err)
	}
	raw, err := marshalData(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("new envelope %q: encode data: %w", id, err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          Source(tenant),
		Type:            t,
		Subject:         subject,
		Time:            at.UTC(),
		DataContentType: DataContentType,
		Data:            raw,
		Tenant:          tenant,
	}, nil
}

// Validate reports whether the envelope can be published; the error wraps ErrInvalidEnvelope.
func (e Envelope) Validate() error {
	if err := validateEvent(e.Tenant, e.Type, e.ID, e.Subject, e.Time); err != nil {
		return err
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q, want %q", ErrInvalidEnvelope, e.SpecVersion, SpecVersion)
	case e.Source != Source(e.Tenant):
		return fmt.Errorf("%w: source %q does not match tenant %q", ErrInvalidEnvelope, e.Source, e.Tenant)
	case len(e.Data) == 0:
		return fmt.Errorf("%w: no data", ErrInvalidEnvelope)
	}
	return nil
}

// ValidTenant reports whether tenant is a valid tenant id: 1 to 64 characters of [A-Za-z0-9_-].
func ValidTenant(tenant string) bool {
	if len(tenant) == 0 || len(tenant) > MaxTenantLength {
		return false
	}
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validateEvent(tenant string, t Type, id, subject string, at time.Time) error {
	if !ValidTenant(tenant) {
		return fmt.Errorf("%w: tenant id %q must be 1 to %d characters of [A-Za-z0-9_-]", ErrInvalidEnvelope, tenant, MaxTenantLength)
	}
	if err := validateID(id); err != nil {
		return err
	}
	if t.Topic() == "" {
		return fmt.Errorf("%w: unknown type %q", ErrInvalidEnvelope, t)
	}
	if subject == "" {
		return fmt.Errorf("%w: empty subject", ErrInvalidEnvelope)
	}
	if at.IsZero() {
		return fmt.Errorf("%w: zero time", ErrInvalidEnvelope)
	}
	return nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id", ErrInvalidEnvelope)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%w: id is %d bytes, at most %d allowed", ErrInvalidEnvelope, len(id), MaxIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: id is not valid UTF-8", ErrInvalidEnvelope)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: id %q contains whitespace or control characters", ErrInvalidEnvelope, id)
		}
	}
	return nil
}
