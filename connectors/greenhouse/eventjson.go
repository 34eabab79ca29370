package greenhouse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"unicode/utf8"
)

// eventDecoder flattens Audit Log events and computes their ids straight from the bytes of a
// page that validValue has already validated, without building a map for each object:
// decoding every event into map[string]any took a fifth of the collector's CPU during an
// onboarding (docs/performance.md). It gives exactly what decoding into maps (with UseNumber)
// and writing them back with sorted keys gave, down to the id: a repeated key's last value
// wins, strings are re-encoded as json.Marshal writes them, numbers are kept as written
// (FuzzEventDecoderMatchesMaps compares the two). It is not safe for concurrent use; its
// buffers are reused from event to event.
type eventDecoder struct {
	canon bytes.Buffer
	ms    []member // the members of the objects being written, a stack
	keys  []byte   // unescaped keys, when a key has escapes
}

// member is an object's member: its unescaped key and its raw value.
type member struct{ key, val []byte }

// decode flattens one event, raw being a valid JSON value.
func (d *eventDecoder) decode(raw []byte) (AuditEvent, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return AuditEvent{}, errors.New("event is not an object")
	}
	d.canon.Reset()
	d.keys = d.keys[:0]
	d.canonical(&d.canon, raw)
	sum := sha256.Sum256(d.canon.Bytes())
	e := AuditEvent{ID: hex.EncodeToString(sum[:16])}
	var top [4][]byte
	d.fields(raw, &top, "event_time", "event", "performer", "request")
	if len(top[0]) == 0 || top[0][0] != '"' {
		return e, errors.New("event_time missing")
	}
	t := unquote(top[0])
	tm, err := parseTime(t)
	if err != nil || tm.IsZero() {
		return e, fmt.Errorf("invalid event_time %q", t)
	}
	e.Time = tm
	if !isObject(top[1]) {
		return e, errors.New("event object missing")
	}
	var f [4][]byte
	d.fields(top[1], &f, "type", "target_type", "target_id", "meta")
	e.Type, e.TargetType, e.TargetID = d.str(f[0]), d.str(f[1]), d.str(f[2])
	if len(f[3]) > 0 && string(f[3]) != "null" {
		var b bytes.Buffer
		d.canonical(&b, f[3])
		e.Meta = b.String()
	}
	if isObject(top[2]) {
		d.fields(top[2], &f, "type", "id", "ip_address", "meta")
		e.PerformerType, e.PerformerID, e.PerformerIP = d.str(f[0]), d.str(f[1]), d.str(f[2])
		if isObject(f[3]) {
			d.fields(f[3], &f, "name", "username", "", "")
			e.PerformerName, e.PerformerEmail = d.str(f[0]), d.str(f[1])
		}
	}
	if isObject(top[3]) {
		d.fields(top[3], &f, "id", "type", "", "")
		e.RequestID, e.RequestType = d.str(f[0]), d.str(f[1])
	}
	if e.Type == "" {
		return e, errors.New("event.type missing")
	}
	return e, nil
}

func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }

// fields sets out[i] to the raw value of obj's member keys[i] (its last one), nil if absent.
func (d *eventDecoder) fields(obj []byte, out *[4][]byte, keys ...string) {
	*out = [4][]byte{}
	start := len(d.ms)
	d.ms = d.members(d.ms, obj)
	for _, m := range d.ms[start:] {
		for i, k := range keys {
			if k != "" && string(m.key) == k {
				out[i] = m.val
			}
		}
	}
	d.ms = d.ms[:start]
}

// str is a field as text: a string's value, a number as written, true or false, "" for null or
// absent, and an object or a list as canonical JSON.
func (d *eventDecoder) str(v []byte) string {
	switch {
	case len(v) == 0 || string(v) == "null":
		return ""
	case v[0] == '"':
		return unquote(v)
	case v[0] == '{' || v[0] == '[':
		var b bytes.Buffer
		d.canonical(&b, v)
		return b.String()
	}
	return string(v)
}

// canonical writes the valid JSON value v with every object's keys sorted, no whitespace,
// strings as json.Marshal writes them and numbers as written.
func (d *eventDecoder) canonical(b *bytes.Buffer, v []byte) {
	switch v[0] {
	case '{':
		start := len(d.ms)
		d.ms = d.members(d.ms, v)
		slices.SortStableFunc(d.ms[start:], func(x, y member) int { return bytes.Compare(x.key, y.key) })
		end := len(d.ms)
		b.WriteByte('{')
		first := true
		for i := start; i < end; i++ {
			if i+1 < end && bytes.Equal(d.ms[i].key, d.ms[i+1].key) {
				continue // a repeated key: its last value wins, as in a map
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			writeKey(b, d.ms[i].key)
			b.WriteByte(':')
			d.canonical(b, d.ms[i].val) // may grow d.ms: index it afresh each time
		}
		b.WriteByte('}')
		d.ms = d.ms[:start]
	case '[':
		b.WriteByte('[')
		for i, e := range elements(v) {
			if i > 0 {
				b.WriteByte(',')
			}
			d.canonical(b, e)
		}
		b.WriteByte(']')
	case '"':
		if plainString(v[1 : len(v)-1]) {
			b.Write(v)
		} else {
			writeString(b, unquote(v))
		}
	default: // a number as written, true, false or null
		b.Write(v)
	}
}

// elements yields the elements of the valid JSON array arr (nothing for an empty arr).
func elements(arr []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		if len(arr) == 0 {
			return
		}
		for i, j := 0, skipSpace(arr, 1); arr[j] != ']'; i++ {
			end := valueEnd(arr, j)
			if !yield(i, arr[j:end]) {
				return
			}
			j = skipSpace(arr, end)
			if arr[j] == ',' {
				j = skipSpace(arr, j+1)
			}
		}
	}
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
		for j := i + 1; ; j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = valueEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
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

// writeKey writes an unescaped key as json.Marshal does.
func writeKey(b *bytes.Buffer, k []byte) {
	if plainString(k) {
		b.WriteByte('"')
		b.Write(k)
		b.WriteByte('"')
		return
	}
	writeString(b, string(k))
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
