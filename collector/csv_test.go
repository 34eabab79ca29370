package collector

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCSVCellEscapesFormulas(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"+1+2":                     "'+1+2",
		"-2+3":                     "'-2+3",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\tcmd":                    "'\tcmd",
		"\rcmd":                    "'\rcmd",
		"Ada Lovelace":             "Ada Lovelace",
		"a=b":                      "a=b",
		"":                         "",
		"2026-11-22T10:00:00Z":     "2026-11-22T10:00:00Z",
	} {
		assert.Equal(t, want, csvCell(in), "%q", in)
	}
}

func TestWantsCSV(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                     false,
		"application/json":                     false,
		"text/csv":                             true,
		"text/csv; charset=utf-8":              true,
		"application/json, text/csv;q=0.5":     false,
		"text/csv, application/json;q=0.9":     true,
		"*/*":                                  false,
		"text/csv;q=0":                         false,
		"text/html, text/csv;q=0.8, */*;q=0.1": true,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		assert.Equal(t, want, wantsCSV(r), "%q", accept)
	}
}

func TestWalkEncoding(t *testing.T) {
	w := walk{tenant: "acme", query: "v1\x00a\x00b", asOf: time.Unix(1_700_000_000, 0).UTC(),
		ids: []int64{4080311, 17, 9_000_000_000_000, -5, 4080311 + 1, 0}}
	got, err := decodeWalk(encodeWalk(w))
	require.NoError(t, err)
	assert.Equal(t, w, got)
	enc := encodeWalk(w)
	for i := 0; i < len(enc); i++ { // every truncation is refused, never a shorter walk
		_, err := decodeWalk(enc[:i])
		assert.Error(t, err, "truncated at %d", i)
	}
}
