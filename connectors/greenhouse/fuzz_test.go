package greenhouse

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets feed hostile bytes to every decoder the connector runs on Greenhouse's
// answers. Each asserts that nothing panics and that the decoder's contract holds. Seed corpora
// live in testdata/fuzz/<FuzzName>; run one with
// go test ./connectors/greenhouse -run XXX -fuzz FuzzName -fuzztime 20s.

// fuzzNow is a fixed "now" shifted by the fuzzer, so time arithmetic meets odd instants too.
func fuzzNow(sec int64) time.Time {
	return time.Unix(1_780_000_000, 0).Add(time.Duration(sec%(10*365*86400)) * time.Second)
}

func FuzzDecodeToken(f *testing.F) {
	f.Add([]byte(`{"token_type":"Bearer","access_token":"abc","expires_at":"2026-01-01T00:00:00Z","expires_in":3600}`), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, sec int64) {
		now := fuzzNow(sec)
		tok, exp, err := decodeToken(b, now)
		if err != nil {
			if tok != "" || !exp.IsZero() {
				t.Fatalf("error %v with a token or expiry", err)
			}
			return
		}
		if tok == "" {
			t.Fatal("no error and no token")
		}
		if exp.IsZero() {
			t.Fatal("no error and no expiry")
		}
		// expires_in is capped at 1e8 s; expires_at may be anything, but an answer without
		// either defaults to an hour and the earlier of the two wins.
		var r struct {
			ExpiresAt json.RawMessage `json:"expires_at"`
		}
		_ = json.Unmarshal(b, &r)
		if _, given := jsonScalar(r.ExpiresAt); !given && exp.After(now.Add(1e8*time.Second)) {
			t.Fatalf("expiry %v beyond the expires_in cap", exp)
		}
	})
}

func FuzzDecodeUsers(f *testing.F) {
	f.Add([]byte(`[{"id":1,"name":"Ada Burke","primary_email":"ada@x.example","created_at":"2024-01-01T00:00:00.000Z","updated_at":"2024-01-02T00:00:00Z"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := decodeUsers(b)
		if err != nil {
			if users != nil {
				t.Fatalf("error %v with users", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatal("decoded invalid JSON")
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != len(users) {
			t.Fatalf("%d users from %d elements (%v)", len(users), len(raw), err)
		}
		for i, u := range users {
			var obj map[string]json.RawMessage
			_ = json.Unmarshal(raw[i], &obj)
			explicit := false
			for k := range obj {
				explicit = explicit || strings.EqualFold(k, "service_account")
			}
			if u.ID <= 0 {
				t.Fatalf("user id %d", u.ID)
			}
			for _, tm := range []time.Time{u.CreatedAt, u.UpdatedAt} {
				if !tm.IsZero() && tm.Location() != time.UTC {
					t.Fatalf("time %v not UTC", tm)
				}
			}
			if u.PrimaryEmail == "" && !u.ServiceAccount && !explicit {
				t.Fatalf("user %d without primary email not flagged as a service account", u.ID)
			}
		}
	})
}

func FuzzDecodeArrayPermissions(f *testing.F) {
	f.Add([]byte(`[{"id":1,"job_id":2,"user_id":3,"role_id":4,"department_id":null,"office_id":7}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var jp []JobPermission
		var fp []FutureJobPermission
		var ur []UserRole
		for _, v := range []any{&jp, &fp, &ur} {
			if err := decodeArray(b, v); err != nil {
				continue
			}
			if !json.Valid(b) || bytes.TrimSpace(b)[0] != '[' {
				t.Fatalf("decoded %q, which is not a JSON array", b)
			}
		}
	})
}

func FuzzDecodeAuditPage(f *testing.F) {
	f.Add([]byte(`{"hits":1,"results":[{"request":{"id":"r1","type":"jobs#update"},"performer":{"meta":{"name":"Ada","username":"ada@x.example"},"id":7,"ip_address":"192.0.2.1","type":"user"},"organization_id":3,"event":{"meta":{"status":["active","hired"]},"target_type":"Job","target_id":12,"type":"data_change_update"},"event_time":"2026-01-01T00:00:00.123Z"}]}`), uint64(1))
	idHex := regexp.MustCompile(`^[0-9a-f]{32}$`)
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		p, err := decodeAuditPage(b, nil)
		if err != nil {
			return
		}
		if p.Hits < 0 {
			t.Fatalf("hits %d", p.Hits)
		}
		if p.Paging != nil {
			checkSearchAfter(t, p.Paging.Next)
		}
		again, err := decodeAuditPage(b, nil)
		if err != nil {
			t.Fatalf("second decode failed: %v", err)
		}
		if len(again.Results) != len(p.Results) {
			t.Fatalf("second decode: %d events, first %d", len(again.Results), len(p.Results))
		}
		for i, e := range p.Results {
			if !idHex.MatchString(e.ID) {
				t.Fatalf("event id %q", e.ID)
			}
			if again.Results[i] != e {
				t.Fatalf("event %d decodes differently twice: %+v vs %+v", i, e, again.Results[i])
			}
			if e.Time.Location() != time.UTC || e.Type == "" {
				t.Fatalf("event %d: time %v type %q", i, e.Time, e.Type)
			}
		}
		// The id must not depend on key order or whitespace: re-encode every event with its
		// object keys shuffled and compare.
		var r struct {
			Results []json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(b, &r); err != nil || len(r.Results) != len(p.Results) {
			t.Fatalf("results: %v, %d vs %d", err, len(r.Results), len(p.Results))
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		var shuffled bytes.Buffer
		shuffled.WriteString(`{"hits":0,"results":[`)
		for i, raw := range r.Results {
			var v any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if i > 0 {
				shuffled.WriteString(",\n ")
			}
			writeShuffled(&shuffled, v, rng)
		}
		shuffled.WriteString("]}")
		q, err := decodeAuditPage(shuffled.Bytes(), nil)
		if err != nil {
			t.Fatalf("shuffled page does not decode: %v\n%s", err, shuffled.Bytes())
		}
		for i, e := range p.Results {
			if q.Results[i] != e {
				t.Fatalf("event %d depends on key order: %+v vs %+v", i, e, q.Results[i])
			}
		}
	})
}

// writeShuffled writes v as JSON with every object's keys in a random order and some spaces.
func writeShuffled(b *bytes.Buffer, v any, rng *rand.Rand) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		b.WriteString("{ ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" , ")
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteString(" : ")
			writeShuffled(b, x[k], rng)
		}
		b.WriteString(" }")
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeShuffled(b, e, rng)
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(x.String())
	default:
		vb, _ := json.Marshal(x)
		b.Write(vb)
	}
}

func FuzzNextLink(f *testing.F) {
	f.Add(`<https://harvest.greenhouse.io/v3/users?cursor=abc>; rel="next"`, uint8(0))
	bases := []string{"https://harvest.greenhouse.io", "http://127.0.0.1:8080", "https://harvest.greenhouse.io/v3"}
	f.Fuzz(func(t *testing.T, header string, which uint8) {
		base, err := url.Parse(bases[int(which)%len(bases)])
		if err != nil {
			t.Fatal(err)
		}
		next, err := nextLink(header, base)
		if err != nil || next == "" {
			return
		}
		// What the client will request must be on the base's scheme and host, as the HTTP
		// client will see it after parsing the string again.
		u, err := url.Parse(next)
		if err != nil {
			t.Fatalf("returned %q, which does not parse: %v", next, err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.Opaque != "" {
			t.Fatalf("returned %q: scheme %q host %q, base %s", next, u.Scheme, u.Host, base)
		}
		if strings.ContainsAny(next, "\r\n") {
			t.Fatalf("returned %q with a line break", next)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	f.Add("120", int64(0))
	f.Fuzz(func(t *testing.T, v string, sec int64) {
		d, ok := parseRetryAfter(v, fuzzNow(sec))
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q: %v outside [0, %v]", v, d, maxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("Retry-After %q: not ok but %v", v, d)
		}
	})
}

func FuzzParseReset(f *testing.F) {
	f.Add("1780000030", int64(0))
	f.Fuzz(func(t *testing.T, v string, sec int64) {
		now := fuzzNow(sec)
		reset, err := parseReset(v, now)
		if err != nil {
			if !reset.IsZero() {
				t.Fatalf("%q: error %v with a time", v, err)
			}
			return
		}
		// A reset never holds the pacer more than maxRetryAfter: a hostile or skewed server
		// must not stall a sync for hours.
		if reset.After(now.Add(maxRetryAfter)) {
			t.Fatalf("%q at %v: reset %v is more than %v ahead", v, now, reset, maxRetryAfter)
		}
	})
}

// checkSearchAfter asserts the contract of a normalised Search-After value.
func checkSearchAfter(t *testing.T, s string) {
	t.Helper()
	if strings.ContainsAny(s, "\r\n") {
		t.Fatalf("search_after %q has a line break", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("search_after %q has a control character", s)
		}
	}
	if !utf8.ValidString(s) {
		t.Fatalf("search_after %q is not UTF-8", s)
	}
}

func FuzzNormalizeSearchAfter(f *testing.F) {
	f.Add([]byte(`"1700000000000,500"`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := normalizeSearchAfter(raw)
		if err != nil {
			if s != "" {
				t.Fatalf("error %v with %q", err, s)
			}
			return
		}
		checkSearchAfter(t, s)
		if len(s) > 512 {
			t.Fatalf("search_after of %d bytes", len(s))
		}
	})
}

func FuzzErrorBody(f *testing.F) {
	f.Add([]byte(`{"message":"Forbidden","errors":["Missing required scope: harvest:users:list"]}`), 403, uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, status int, kind uint8) {
		msg := errorMessage(body)
		if len(msg) > 300+len("…") {
			t.Fatalf("message of %d bytes", len(msg))
		}
		if !utf8.ValidString(msg) {
			t.Fatalf("message %q is not UTF-8", msg)
		}
		e := classify("op", endpointKind(int(kind)%3), status, body)
		if e.Code == "" || e.Status != status || e.Message != msg {
			t.Fatalf("classify: %+v", e)
		}
		if !strings.Contains(e.Error(), string(e.Code)) {
			t.Fatalf("error text %q lacks its code", e.Error())
		}
	})
}

// FuzzWriteString checks the fast path of the canonical JSON against json.Marshal: an event id
// is a hash of those bytes, so they must never change.
func FuzzWriteString(f *testing.F) {
	f.Add("data_change_update")
	f.Fuzz(func(t *testing.T, s string) {
		var b bytes.Buffer
		writeString(&b, s)
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("writeString(%q) = %s, json.Marshal %s", s, b.Bytes(), want)
		}
	})
}
