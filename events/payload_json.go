package events

import (
	"encoding/json"
	"strconv"
	"time"
)

// marshalData is json.Marshal(data), written by hand for saas.user.changed: most of what a
// users sync publishes, and json.Marshal's reflection over it was 4 % of the collector's CPU
// onboarding (docs/performance.md, "Twelfth session"). The bytes are json.Marshal's
// (TestUserChangedJSONMatchesMarshal, FuzzUserChangedJSON).
func marshalData(data any) ([]byte, error) {
	if c, ok := data.(UserChanged); ok {
		if b, ok := c.appendJSON(make([]byte, 0, 512)); ok {
			return b, nil
		}
	}
	return json.Marshal(data)
}

// appendJSON appends c as json.Marshal writes it; false for a time json.Marshal refuses
// (marshalData then lets json.Marshal say why).
func (c *UserChanged) appendJSON(b []byte) ([]byte, bool) {
	u := &c.User
	b = append(b, `{"user":{"tenant_id":`...)
	b = appendJSONString(b, u.TenantID)
	b = append(b, `,"app":`...)
	b = appendJSONString(b, u.App)
	b = strconv.AppendInt(append(b, `,"user_id":`...), u.UserID, 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, u.Name)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, u.Email)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, u.Status)
	b = strconv.AppendBool(append(b, `,"licensed":`...), u.Licensed)
	b = append(b, `,"license_type":`...)
	b = appendJSONString(b, u.LicenseType)
	b = strconv.AppendBool(append(b, `,"site_admin":`...), u.SiteAdmin)
	b = strconv.AppendBool(append(b, `,"service_account":`...), u.ServiceAccount)
	ok := true
	for _, t := range [...]struct {
		key string
		at  *time.Time
	}{{`,"created_at":`, &u.CreatedAt}, {`,"updated_at":`, &u.UpdatedAt}, {`,"first_seen_at":`, &u.FirstSeenAt},
		{`,"last_seen_at":`, &u.LastSeenAt}, {`,"removed_at":`, u.RemovedAt}, {`,"last_activity_at":`, u.LastActivityAt}} {
		b = append(b, t.key...)
		if t.at == nil {
			b = append(b, "null"...)
			continue
		}
		var good bool
		b, good = appendJSONTime(b, *t.at)
		ok = ok && good
	}
	for _, s := range [...][2]string{{`,"last_activity_type":`, u.LastActivityType}, {`,"usage":`, u.Usage}, {`,"reason":`, u.Reason}} {
		if s[1] != "" { // omitempty
			b = appendJSONString(append(b, s[0]...), s[1])
		}
	}
	b = append(b, `},"changed":`...)
	if c.Changed == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range c.Changed {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = strconv.AppendUint(append(b, `,"revision":`...), uint64(c.Revision), 10)
	return append(b, '}'), ok
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it (RFC 3339 with nanoseconds);
// false where MarshalJSON fails: a year outside [0,9999], an offset of 24 hours or more or
// with seconds.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	if len(b) < n0+5 || b[n0+4] != '-' {
		return b, false // not exactly four digits of year
	}
	if b[len(b)-1] != 'Z' {
		c := b[len(b)-len("Z07:00")]
		if '0' <= c && c <= '9' || 10*(b[len(b)-5]-'0')+(b[len(b)-4]-'0') >= 24 {
			return b, false
		}
	}
	return append(b, '"'), true
}
