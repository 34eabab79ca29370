package simulator

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The JSON of the busy answers (/events pages, Harvest list pages) is appended by hand into a
// pooled buffer: reflection, maps and per-field allocations made the simulator a sizeable
// share of a scale run's CPU. The appenders write exactly the bytes encoding/json.Marshal
// wrote for the structures they replace (keys in the same order, strings escaped the same
// way, HTML characters included); wire_internal_test.go holds those structures as the
// reference. Rare answers (errors, tokens, faults) still go through writeJSON.

// buffers are the pooled buffers answers are rendered into.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled is the capacity above which a buffer is left to the garbage collector.
const maxPooled = 4 << 20

// getBuffer returns an empty pooled buffer; hand it back with putBuffer once written.
func getBuffer() *[]byte {
	bp := buffers.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// putBuffer keeps b (the rendered contents of bp) for another answer.
func putBuffer(bp *[]byte, b []byte) {
	if cap(b) <= maxPooled {
		*bp = b[:0]
		buffers.Put(bp)
	}
}

// writeRendered writes the rendered body b of bp and returns the buffer to the pool.
func writeRendered(w http.ResponseWriter, code int, bp *[]byte, b []byte) {
	writeBody(w, code, b)
	putBuffer(bp, b)
}

const hexDigits = "0123456789abcdef"

// copied are the ASCII bytes appendString copies as they are: all but control characters, ",
// \, <, > and &.
var copied = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// appendString appends s as a JSON string exactly as encoding/json does (its appendString
// with HTML escaping): ", \ and control characters escaped (\b, \f, \n, \r, \t short), <, >
// and & as \u003c, \u003e, \u0026, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if copied[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendEscapedByte(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscapedByte appends the escape of an ASCII byte that appendString does not copy.
func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '\\', '"':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// appendTime appends t as the JSON string of t.UTC().Format(tsLayout): UTC, milliseconds
// (truncated).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 { // the layout's four-digit year does not hold it
		return appendString(b, t.Format(tsLayout))
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b, '"', digit(year/1000), digit(year/100), digit(year/10), digit(year), '-',
		digit(int(month)/10), digit(int(month)), '-', digit(day/10), digit(day), 'T',
		digit(hour/10), digit(hour), ':', digit(minute/10), digit(minute), ':', digit(sec/10), digit(sec), '.',
		digit(ms/100), digit(ms/10), digit(ms), 'Z', '"')
}

// digit is the last decimal digit of v >= 0.
func digit(v int) byte { return byte('0' + v%10) }

// appendHex16 appends x as 16 lower-case hex digits, as fmt's %016x.
func appendHex16(b []byte, x uint64) []byte {
	var d [16]byte
	for i := 15; i >= 0; i-- {
		d[i] = hexDigits[x&0xF]
		x >>= 4
	}
	return append(b, d[:]...)
}

// appendInt appends the JSON text pre (such as `,"id":`) and then v.
func appendInt(b []byte, pre string, v int64) []byte {
	b = append(b, pre...)
	return strconv.AppendInt(b, v, 10)
}

// appendOptInt appends pre and then v, or null when v is 0.
func appendOptInt(b []byte, pre string, v int64) []byte {
	if v == 0 {
		return append(append(b, pre...), "null"...)
	}
	return appendInt(b, pre, v)
}
