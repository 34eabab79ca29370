package greenhouse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// eventDecoder flattens Audit Log events and computes their ids straight from the bytes of a
// page that validValue has already validated, without building a map for each object:
// decoding every event into map[string]any took a fifth of the collector's CPU during an
// onboarding (docs/performance.md). It gives exactly what decoding into maps (with UseNumber)
// and writing them back with sorted keys gave, down to the id: a repeated key's last value
// wins, strings are re-encoded as json.Marshal writes them, numbers are kept as written
// (FuzzEventDecoderMatchesMaps compares the two).
//
// It reads each event once: the canonical form is written while the event is read, each
// object's members first in their order and then again sorted (nested values are copied, not
// read again), and the fields the flattening needs are taken on the way (eventFields). Finding
// each member's end before writing it, and reading the fields apart from the canonical form,
// read the deeper bytes of an event five or six times over, and that was half of the
// decoding's CPU (docs/performance.md, "Eleventh session"). It is not safe for concurrent use;
// its buffers are reused from event to event.
type eventDecoder struct {
	out  []byte  // the canonical form being written
	ps   []piece // the members of the objects being written, a stack
	keys []byte  // unescaped keys, when a key has escapes
	got  [nSlots]taken
	// recent holds each slot's last two texts, most recent first (text).
	recent [nSlots][2]string
}

// member is an object's member: its unescaped key and its raw value.
type member struct{ key, val []byte }

// piece is a member being written: its unescaped key and its value's canonical form, out[start:end].
type piece struct {
	key        []byte
	start, end int
}

// taken is a field the flattening reads: the first byte of its canonical form (0: absent)
// and, for a leaf, its text.
type taken struct {
	kind byte
	text string
}

// The fields of an event the flattening reads, by where they are.
const (
	sTime = iota
	sEvent
	sType
	sTargetType
	sTargetID
	sMeta
	sPerformer
	sPerformerType
	sPerformerID
	sPerformerIP
	sPerformerMeta
	sPerformerName
	sPerformerEmail
	sRequest
	sRequestID
	sRequestType
	nSlots
)

// field is a member the flattening reads from an object: its key, its slot and, for an object
// it reads members of, their fields (inner; its slots follow slot, up to last).
type field struct {
	key   string
	slot  int
	inner []field
	last  int
	raw   bool // the text is the canonical form as is (event.meta), not a string's value
}

// eventFields are the members read from an event object.
var eventFields = []field{
	{key: "event_time", slot: sTime},
	{key: "event", slot: sEvent, last: sMeta, inner: []field{
		{key: "type", slot: sType}, {key: "target_type", slot: sTargetType},
		{key: "target_id", slot: sTargetID}, {key: "meta", slot: sMeta, raw: true},
	}},
	{key: "performer", slot: sPerformer, last: sPerformerEmail, inner: []field{
		{key: "type", slot: sPerformerType}, {key: "id", slot: sPerformerID},
		{key: "ip_address", slot: sPerformerIP},
		{key: "meta", slot: sPerformerMeta, last: sPerformerEmail, inner: []field{
			{key: "name", slot: sPerformerName}, {key: "username", slot: sPerformerEmail},
		}},
	}},
	{key: "request", slot: sRequest, last: sRequestType, inner: []field{
		{key: "id", slot: sRequestID}, {key: "type", slot: sRequestType},
	}},
}

// decode flattens one event, raw being a valid JSON value.
func (d *eventDecoder) decode(raw []byte) (AuditEvent, error) {
	raw = bytes.TrimSpace(raw)
	e, _, err := d.decodeAt(raw, 0)
	return e, err
}

// decodeAt flattens the event that starts at v[i], v being valid JSON, and returns the index
// after it.
func (d *eventDecoder) decodeAt(v []byte, i int) (AuditEvent, int, error) {
	if i >= len(v) || v[i] != '{' {
		return AuditEvent{}, i, errors.New("event is not an object")
	}
	d.out, d.keys, d.got = d.out[:0], d.keys[:0], [nSlots]taken{}
	end := d.object(v, i, eventFields)
	sum := sha256.Sum256(d.out)
	e := AuditEvent{ID: hex.EncodeToString(sum[:16])}
	g := &d.got
	if g[sTime].kind != '"' {
		return e, end, errors.New("event_time missing")
	}
	tm, err := parseTime(g[sTime].text)
	if err != nil || tm.IsZero() {
		return e, end, fmt.Errorf("invalid event_time %q", g[sTime].text)
	}
	e.Time = tm
	if g[sEvent].kind != '{' {
		return e, end, errors.New("event object missing")
	}
	e.Type, e.TargetType, e.TargetID, e.Meta = g[sType].text, g[sTargetType].text, g[sTargetID].text, g[sMeta].text
	e.PerformerType, e.PerformerID, e.PerformerIP = g[sPerformerType].text, g[sPerformerID].text, g[sPerformerIP].text
	e.PerformerName, e.PerformerEmail = g[sPerformerName].text, g[sPerformerEmail].text
	e.RequestID, e.RequestType = g[sRequestID].text, g[sRequestType].text
	if e.Type == "" {
		return e, end, errors.New("event.type missing")
	}
	return e, end, nil
}

// value writes the canonical form of the valid JSON value at v[i] (every object's keys sorted,
// no whitespace, strings as json.Marshal writes them, numbers as written), taking fields from
// it if it is an object, and returns the index after it.
func (d *eventDecoder) value(v []byte, i int, fields []field) int {
	switch v[i] {
	case '{':
		return d.object(v, i, fields)
	case '[':
		d.out = append(d.out, '[')
		i = skipSpace(v, i+1)
		for n := 0; v[i] != ']'; n++ {
			if n > 0 {
				d.out = append(d.out, ',')
			}
			i = skipSpace(v, d.value(v, i, nil))
			if v[i] == ',' {
				i = skipSpace(v, i+1)
			}
		}
		d.out = append(d.out, ']')
		return i + 1
	case '"':
		// The string's end, and whether json.Marshal writes it as it is (plainString), in one
		// reading.
		for j := i + 1; ; j++ {
			switch c := v[j]; {
			case c == '"':
				d.out = append(d.out, v[i:j+1]...)
				return j + 1
			case c < 0x20 || c >= 0x7f || c == '\\' || c == '<' || c == '>' || c == '&':
				end := stringEnd(v, i)
				d.out = appendString(d.out, unquote(v[i:end]))
				return end
			}
		}
	}
	end := scalarEnd(v, i) // a number as written, true, false or null
	d.out = append(d.out, v[i:end]...)
	return end
}

// object writes the object at v[i] as value does: its members in their order, each value in
// canonical form, then the members again sorted by key (a repeated key's last value wins, as
// in a map) in place of the first writing.
func (d *eventDecoder) object(v []byte, i int, fields []field) int {
	base, start := len(d.ps), len(d.out)
	for i = skipSpace(v, i+1); v[i] != '}'; {
		var key []byte
		key, i = d.key(v, i)
		i = skipSpace(v, skipSpace(v, i)+1) // past the ':'
		f := findField(fields, key)
		var inner []field
		if f != nil && f.inner != nil {
			clear(d.got[f.slot : f.last+1]) // an earlier member of that key is replaced
			inner = f.inner
		}
		vs := len(d.out)
		i = d.value(v, i, inner)
		d.ps = append(d.ps, piece{key: key, start: vs, end: len(d.out)})
		if f != nil {
			d.take(f, d.out[vs:])
		}
		if i = skipSpace(v, i); v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	ps := d.ps[base:]
	slices.SortStableFunc(ps, func(x, y piece) int { return bytes.Compare(x.key, y.key) })
	sorted := len(d.out)
	d.out = append(d.out, '{')
	first := true
	for k, p := range ps {
		if k+1 < len(ps) && bytes.Equal(p.key, ps[k+1].key) {
			continue
		}
		if !first {
			d.out = append(d.out, ',')
		}
		first = false
		d.out = appendKey(d.out, p.key)
		d.out = append(d.out, ':')
		d.out = append(d.out, d.out[p.start:p.end]...)
	}
	d.out = append(d.out, '}')
	d.out = d.out[:start+copy(d.out[start:], d.out[sorted:])]
	d.ps = d.ps[:base]
	return i + 1
}

// key reads the key that starts at v[i] and returns it unescaped, and the index after it.
func (d *eventDecoder) key(v []byte, i int) ([]byte, int) {
	end := stringEnd(v, i)
	key := v[i+1 : end-1]
	if !plainKey(key) {
		k := unquote(v[i:end])
		n := len(d.keys)
		d.keys = append(d.keys, k...)
		key = d.keys[n:len(d.keys):len(d.keys)] // a later append does not move it
	}
	return key, end
}

// plainKey reports whether the key's raw bytes are its value: ASCII without escapes.
func plainKey(k []byte) bool {
	for _, c := range k {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// findField is the field of fields with key k, nil if none.
func findField(fields []field, k []byte) *field {
	for i := range fields {
		if fields[i].key == string(k) {
			return &fields[i]
		}
	}
	return nil
}

// take keeps the member's canonical value c as f's text: a string's value, a number as
// written, true or false, "" for null, and an object or a list as canonical JSON (event.meta
// as canonical JSON whatever it is, "" for null).
func (d *eventDecoder) take(f *field, c []byte) {
	t := taken{kind: c[0]}
	switch {
	case f.inner != nil || string(c) == "null":
	case f.raw || c[0] != '"':
		t.text = d.text(f.slot, c)
	case bytes.IndexByte(c, '\\') < 0: // the canonical form is valid UTF-8
		t.text = d.text(f.slot, c[1:len(c)-1])
	default:
		t.text = unquote(c)
	}
	d.got[f.slot] = t
}

// text is b as a string: one of the last two texts of the slot when b equals it, so that the
// events of a page share their few types and their performers' repeated fields instead of
// allocating each (13 strings an event before).
func (d *eventDecoder) text(slot int, b []byte) string {
	r := &d.recent[slot]
	switch {
	case r[0] == string(b):
		return r[0]
	case r[1] == string(b):
		r[0], r[1] = r[1], r[0]
		return r[0]
	}
	r[1], r[0] = r[0], string(b)
	return r[0]
}

// stringEnd returns the index just after the valid JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// scalarEnd returns the index just after the valid number, true, false or null at b[i].
func scalarEnd(b []byte, i int) int {
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// members appends the members of the valid JSON object obj to ms, in their order.
func (d *eventDecoder) members(ms []member, obj []byte) []member {
	for i := skipSpace(obj, 1); obj[i] != '}'; {
		kEnd := valueEnd(obj, i)
		key := obj[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			k := unquote(obj[i:kEnd])
			n := len(d.keys)
			d.keys = append(d.keys, k...)
			key = d.keys[n:len(d.keys):len(d.keys)]
		}
		j := skipSpace(obj, kEnd) // at ':'
		j = skipSpace(obj, j+1)   // at the value
		vEnd := valueEnd(obj, j)
		ms = append(ms, member{key: key, val: obj[j:vEnd]})
		i = skipSpace(obj, vEnd)
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return ms
}

// skipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just after the valid JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	return scalarEnd(b, i)
}

// plainString reports whether s, a string's content (raw between its quotes, or unescaped),
// is written back as is by json.Marshal: printable ASCII without quotes, backslashes or the
// HTML characters it escapes.
func plainString(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendKey appends an unescaped key as json.Marshal writes it.
func appendKey(b, k []byte) []byte {
	if plainString(k) {
		b = append(b, '"')
		b = append(b, k...)
		return append(b, '"')
	}
	return appendString(b, string(k))
}

// unquote returns the value of the valid JSON string s (quotes included), as encoding/json
// decodes it: escapes resolved, invalid UTF-8 replaced.
func unquote(s []byte) string {
	in := s[1 : len(s)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in)
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return string(in) // not reached: s was validated
	}
	return out
}

// maxDepth is the deepest nesting encoding/json accepts, and so validValue.
const maxDepth = 10000

// validValue checks the JSON value that starts at b[i] and returns the index after it, as
// encoding/json's scanner would (FuzzValidJSON) at several times its speed: decodeAuditPage
// validates a page once so, and reads it with an eventDecoder.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		return validComposite(b, i, depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return validNumber(b, i)
	case c == 't':
		return i + 4, bytes.HasPrefix(b[i:], []byte("true"))
	case c == 'f':
		return i + 5, bytes.HasPrefix(b[i:], []byte("false"))
	case c == 'n':
		return i + 4, bytes.HasPrefix(b[i:], []byte("null"))
	}
	return i, false
}

// validComposite checks the object or list that starts at b[i], nested depth deep.
func validComposite(b []byte, i, depth int) (int, bool) {
	if depth > maxDepth {
		return i, false
	}
	closing, object := byte(']'), b[i] == '{'
	if object {
		closing = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return i + 1, true
	}
	for {
		var ok bool
		if object {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, ok = validString(b, i); !ok {
				return i, false
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
		if i, ok = validValue(b, i, depth); !ok {
			return i, false
		}
		switch i = skipSpace(b, i); {
		case i >= len(b):
			return i, false
		case b[i] == closing:
			return i + 1, true
		case b[i] != ',':
			return i, false
		}
		i = skipSpace(b, i+1)
	}
}

// validString checks the string that starts at b[i] (its quote).
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i++; i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// validNumber checks the number that starts at b[i]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j, j > i
	}
	if b[i] == '-' {
		i++
	}
	var ok bool
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}
