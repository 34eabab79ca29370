package greenhouse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The reference the eventDecoder must equal: each event decoded into map[string]any with
// UseNumber, flattened from the maps, its id hashed over the maps written back with sorted
// keys. It is what decodeAuditPage did until the eventDecoder replaced it.

func decodeEventMaps(raw []byte) (AuditEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return AuditEvent{}, err
	}
	var canon bytes.Buffer
	return decodeEvent(v, &canon)
}

// decodeAuditPageMaps is decodeAuditPage as it was before the eventDecoder.
func decodeAuditPageMaps(b []byte) (auditPage, error) {
	var r struct {
		Hits    json.Number `json:"hits"`
		Results []any       `json:"results"` // decoded once, numbers kept as written
		Paging  *struct {
			PitID string          `json:"pit_id"`
			Next  json.RawMessage `json:"next_search_after"`
		} `json:"paging"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return auditPage{}, fmt.Errorf("decode audit page: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return auditPage{}, errors.New("decode audit page: data after the JSON object")
	}
	if r.Results == nil && r.Hits == "" {
		return auditPage{}, errors.New("audit page has neither hits nor results")
	}
	var p auditPage
	if r.Hits != "" {
		n, err := strconv.Atoi(string(r.Hits))
		if err != nil || n < 0 {
			return p, fmt.Errorf("invalid hits %s", r.Hits)
		}
		p.Hits = n
	} else {
		p.Hits = len(r.Results)
	}
	var canon bytes.Buffer
	for i, raw := range r.Results {
		e, err := decodeEvent(raw, &canon)
		if err != nil {
			return p, fmt.Errorf("event %d: %w", i, err)
		}
		p.Results = append(p.Results, e)
	}
	if r.Paging != nil {
		next, err := normalizeSearchAfter(r.Paging.Next)
		if err != nil {
			return p, err
		}
		p.Paging = &auditPaging{PitID: r.Paging.PitID, Next: next}
	}
	return p, nil
}

// decodeEvent flattens an event and computes its stable id: SHA-256 over the canonical JSON
// (object keys sorted, no whitespace), first 16 bytes in hex.
// v is the event as decoded with UseNumber; canon is a scratch buffer.
func decodeEvent(v any, canon *bytes.Buffer) (AuditEvent, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return AuditEvent{}, errors.New("event is not an object")
	}
	canon.Reset()
	canonical(canon, v)
	sum := sha256.Sum256(canon.Bytes())
	e := AuditEvent{ID: hex.EncodeToString(sum[:16])}
	t, ok := obj["event_time"].(string)
	if !ok {
		return e, errors.New("event_time missing")
	}
	tm, err := parseTime(t)
	if err != nil || tm.IsZero() {
		return e, fmt.Errorf("invalid event_time %q", t)
	}
	e.Time = tm
	if ev, ok := obj["event"].(map[string]any); ok {
		e.Type = str(ev["type"])
		e.TargetType = str(ev["target_type"])
		e.TargetID = str(ev["target_id"])
		if m, ok := ev["meta"]; ok && m != nil {
			var b bytes.Buffer
			canonical(&b, m)
			e.Meta = b.String()
		}
	} else {
		return e, errors.New("event object missing")
	}
	if pf, ok := obj["performer"].(map[string]any); ok {
		e.PerformerType = str(pf["type"])
		e.PerformerID = str(pf["id"])
		e.PerformerIP = str(pf["ip_address"])
		if m, ok := pf["meta"].(map[string]any); ok {
			e.PerformerName = str(m["name"])
			e.PerformerEmail = str(m["username"])
		}
	}
	if rq, ok := obj["request"].(map[string]any); ok {
		e.RequestID = str(rq["id"])
		e.RequestType = str(rq["type"])
	}
	if e.Type == "" {
		return e, errors.New("event.type missing")
	}
	return e, nil
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	var b bytes.Buffer
	canonical(&b, v)
	return b.String()
}

// canonical writes v as JSON with sorted keys.
func canonical(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeSeq(b, '{', '}', len(keys), func(i int) {
			writeString(b, keys[i])
			b.WriteByte(':')
			canonical(b, x[keys[i]])
		})
	case []any:
		writeSeq(b, '[', ']', len(x), func(i int) { canonical(b, x[i]) })
	case json.Number:
		b.WriteString(x.String())
	case string:
		writeString(b, x)
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case nil:
		b.WriteString("null")
	default:
		vb, _ := json.Marshal(x)
		b.Write(vb)
	}
}

// writeSeq writes n elements between open and close, separated by commas.
func writeSeq(b *bytes.Buffer, open, close byte, n int, elem func(i int)) {
	b.WriteByte(open)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		elem(i)
	}
	b.WriteByte(close)
}

// eventSamples are events of every shape the decoder must handle alike: the simulator's, the
// documented examples', and hostile ones (repeated keys, escapes, invalid UTF-8, deep nesting).
var eventSamples = []string{
	`{"request":{"id":"0000000000000001","type":"jobs#update"},"performer":{"meta":{"name":"Ada Lovelace","username":"ada@x.example"},"id":4000012,"ip_address":"10.61.9.12","type":"user"},"organization_id":3,"event":{"meta":{"status":["active","hired"]},"target_type":"Job","target_id":12,"type":"data_change_update"},"event_time":"2026-01-01T00:00:00.123Z"}`,
	`{ "event_time" : "2026-01-01T01:00:00+01:00", "event":{"type":"harvest_access","target_type":null,"meta":null},
	  "performer":{"type":"api_key","id":"Harvest key","meta":{"api_key_type":"harvest"}} }`,
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":"a","type":"b","meta":{"z":1,"a":[1.50,-0,2e10,{"y":"<&>","x":"\u00e9\"\\"}],"z":2}}}`,
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":{"b":1,"a":[true,false,null]},"target_id":true,"target_type":["x"]},"performer":{"id":null,"meta":"ada"},"request":[1]}`,
	"{\"event_time\":\"2026-01-01T00:00:00Z\",\"ev\\u0065nt\":{\"type\":\"\xff\xfe\\u2028\\ud800\"},\"\xc3\":1,\"\xc3\xa9\":2,\"e\\u0301\":3}",
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":"x","meta":[[[[{"a":[[{}],[]]}]]]]},"performer":{"meta":{"name":"\t\n\u0000","username":12.0}}}`,
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":"x"},"event":"gone"}`,
	`{"event_time":17,"event":{"type":"x"}}`,
	`{"event_time":"yesterday","event":{"type":"x"}}`,
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":""}}`,
	`{"event_time":"2026-01-01T00:00:00Z","event":{"type":null}}`,
	`{"event_time":"2026-01-01T00:00:00Z"}`,
	`{"event_time":"","event":{"type":"x"}}`,
	`{}`, `[]`, `"event"`, `7`, `null`,
}

// TestEventDecoderMatchesMaps: for every sample and every event of the fuzz corpus, the
// eventDecoder gives what the maps gave, id and error included.
func TestEventDecoderMatchesMaps(t *testing.T) {
	samples := append([]string(nil), eventSamples...)
	files, err := filepath.Glob("testdata/fuzz/FuzzDecodeAuditPage/*")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if s, ok := strings.CutPrefix(line, "[]byte("); ok {
				q, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
				require.NoError(t, err, f)
				var page struct{ Results []json.RawMessage }
				if json.Unmarshal([]byte(q), &page) == nil {
					for _, r := range page.Results {
						samples = append(samples, string(r))
					}
				}
			}
		}
	}
	for i, s := range samples {
		want, wantErr := decodeEventMaps([]byte(s))
		var d eventDecoder
		got, err := d.decode([]byte(s))
		assert.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(err), "sample %d: %s", i, s)
		assert.Equal(t, want, got, "sample %d: %s", i, s)
	}
}

// FuzzEventDecoderMatchesMaps: any valid JSON value decodes as the maps decoded it.
func FuzzEventDecoderMatchesMaps(f *testing.F) {
	for _, s := range eventSamples {
		f.Add([]byte(s))
	}
	var d eventDecoder // reused across inputs, as in a page
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		want, wantErr := decodeEventMaps(b)
		got, err := d.decode(b)
		if fmt.Sprint(wantErr) != fmt.Sprint(err) || want != got {
			t.Fatalf("%q:\nmaps  %+v %v\nbytes %+v %v", b, want, wantErr, got, err)
		}
	})
}

// BenchmarkDecodeAuditPage decodes a page of 500 events shaped as the simulator's, with the
// maps (as decodeAuditPage did before the eventDecoder) and with decodeAuditPage, side by side.
func BenchmarkDecodeAuditPage(b *testing.B) {
	var page bytes.Buffer
	page.WriteString(`{"hits":500,"results":[`)
	for i := range 500 {
		if i > 0 {
			page.WriteByte(',')
		}
		fmt.Fprintf(&page, `{"request":{"id":"%016x","type":"jobs#update"},"performer":{"meta":{"name":"User %d","username":"user%d@acme.example"},"id":%d,"ip_address":"10.61.9.%d","type":"user"},"organization_id":3,"event":{"meta":{"status":["active","hired"]},"target_type":"Job","target_id":%d,"type":"data_change_update"},"event_time":"2026-01-01T00:%02d:00.123Z"}`,
			i*7919, i, i, 4000000+i, i%250, 1000+i, i%60)
	}
	page.WriteString(`],"paging":{"pit_id":"p","next_search_after":"1767225600123,abc"}}`)
	body := page.Bytes()
	b.Run("maps", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeAuditPageMaps(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bytes", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeAuditPage(body, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// validJSON reports whether b is one JSON value with optional whitespace around it, checked
// as decodeAuditPage checks a page.
func validJSON(b []byte) bool {
	end, ok := validValue(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, end) == len(b)
}

// FuzzValidJSON: validValue, as decodeAuditPage uses it, accepts exactly what json.Valid
// accepts.
func FuzzValidJSON(f *testing.F) {
	for _, s := range append(eventSamples, ``, ` `, `{`, `[1,]`, `{"a":1,}`, `01`, `-`, `1.`, `1e`, `1e+`, `.5`,
		`"\u12"`, `"\x"`, "\"\x01\"", `tru`, `nul`, `{"a" 1}`, `{1:2}`, `[1 2]`, ` [ ] `, `{} {}`, strings.Repeat("[", 10001)+strings.Repeat("]", 10001),
		strings.Repeat("[", 10000)+strings.Repeat("]", 10000), `"\ud800"`, "\"\xff\"", `-0.0e-0`, `1E+2`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

// FuzzDecodeAuditPageMatchesMaps: a page decodes as it did with the maps, or fails as it did.
func FuzzDecodeAuditPageMatchesMaps(f *testing.F) {
	f.Add([]byte(`{"hits":2,"results":[` + eventSamples[0] + `,` + eventSamples[1] + `],"paging":{"pit_id":"p","next_search_after":[1,"a"]}}`))
	f.Add([]byte(`{"HITS":"3","Results":null,"results":[],"paging":{"pit_id":"a"},"Paging":{"next_search_after":"1,b"}}`))
	f.Add([]byte(`{"results":[{"event_time":"2026-01-01T00:00:00Z","event":{"type":"x"}}],"results":{}} `))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := decodeAuditPageMaps(b)
		got, err := decodeAuditPage(b, nil)
		if (wantErr == nil) != (err == nil) {
			t.Fatalf("%q: maps %v, bytes %v", b, wantErr, err)
		}
		if err == nil {
			if len(want.Results) == 0 && len(got.Results) == 0 {
				want.Results, got.Results = nil, nil // nil or empty alike
			}
			assert.Equal(t, want, got, "%q", b)
		}
	})
}
