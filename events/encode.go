package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// appendJSON appends the envelope's JSON encoding to b. For compact Data (what NewEnvelope
// produces) the bytes equal json.Marshal(e); it avoids json.Marshal's reflection and its
// validation and re-compaction of Data, which dominated the publisher's CPU time. Data is
// trusted to be valid JSON (NewEnvelope and json decoding guarantee it); only its ends are
// checked, which catches empty and truncated values.
func (e *Envelope) appendJSON(b []byte) ([]byte, error) {
	if !plausibleJSON(e.Data) {
		return nil, fmt.Errorf("%w: data is not a JSON value", ErrInvalidEnvelope)
	}
	b = append(b, `{"specversion":`...)
	b = appendJSONString(b, e.SpecVersion)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, e.Source)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(e.Type))
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, e.Subject)
	b = append(b, `,"time":`...)
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, errors.New("encode envelope: time year outside of [0,9999]")
	}
	b = append(b, '"')
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = append(b, `,"datacontenttype":`...)
	b = appendJSONString(b, e.DataContentType)
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	b = append(b, '}')
	return b, nil
}

// appendJSONString appends s as a JSON string exactly as encoding/json does: plain ASCII is
// copied, anything that needs escaping (including encoding/json's HTML escapes) goes through
// json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plausibleJSON reports whether data starts and ends like one JSON value.
func plausibleJSON(data []byte) bool {
	if len(data) == 0 {
		return false
	}
	first, last := data[0], data[len(data)-1]
	switch first {
	case '{':
		return last == '}'
	case '[':
		return last == ']'
	case '"':
		return last == '"' && len(data) >= 2
	case 't', 'n':
		return last == 'e' || last == 'l'
	case 'f':
		return last == 'e'
	}
	return (first == '-' || first >= '0' && first <= '9') && last >= '0' && last <= '9'
}
