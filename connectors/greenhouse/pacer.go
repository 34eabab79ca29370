package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pacing (docs/greenhouse-wire.md: "Assumptions", row 1, and the limits under "Harvest v3"
// and "Audit Log"). Greenhouse documents fixed windows: Harvest
// 30 s, the Audit Log 10 s, paginated Audit Log requests 3 per 30 s. Its answers carry some
// subset of X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset and (on a 429)
// Retry-After: the Audit Log docs show only Limit and Remaining, the Harvest docs put Reset on
// 429 answers only, and a 429 from the Audit Log carries neither Limit nor Remaining. A pacer
// works with any subset:
//
//   - Limit sets the budget of a window; until one is seen the documented default holds.
//   - Remaining, read from the answer to the latest request sent, minus the requests sent
//     after it, is the budget left; a Remaining above what the pacer believed left means the
//     server opened a new window.
//   - Reset, when present, is the window's end. Without it the window is the documented length
//     anchored at the answer that opened it (or showed it open): the server's window began no
//     later than that answer, so it ends no later than the anchor plus the length, and the
//     pacer never sends early. It may wait up to one window too long once; after that a
//     rollover seen in Remaining aligns it with the server's phase.
//   - Retry-After on a 429 holds the class until then.
//
// Without Remaining a class counts its own requests in a sliding window: at most the limit (as
// learned, else the default) in any interval of the window's length, which no fixed window of
// the server's, whatever its phase, can exceed. No missing header stops requests for good:
// every wait ends within a window.

// windows are the documented window lengths and default limits of each class.
var (
	defaultWindows = map[endpointKind]time.Duration{kindToken: 60 * time.Second, kindHarvest: 30 * time.Second, kindAudit: 10 * time.Second}
	// Harvest's limit varies by integration; 50 per 30 s is what Airbyte budgets until an
	// answer names the limit. The Audit Log documents 50 per 10 s. The token endpoint
	// documents none: it is not paced until an answer names one.
	defaultLimits = map[endpointKind]int{kindToken: 0, kindHarvest: 50, kindAudit: 50}
)

// pacer keeps one request class inside its rate limit. A server-reported pacer follows the
// headers as above; a local pacer (local set) keeps a sliding window over the send times of its
// last limit0 requests.
type pacer struct {
	mu sync.Mutex

	window time.Duration // documented window length, used when no Reset names the end
	limit  int           // budget of a window: X-RateLimit-Limit, else the default (0: unpaced)

	open    bool      // a window is open
	reset   time.Time // its end: from X-RateLimit-Reset, else estimated
	exact   bool      // reset came from X-RateLimit-Reset
	anchor  bool      // an answer has anchored the estimated reset of the open window
	left    int       // requests that may still be sent in the window
	counted bool      // the latest answer reported X-RateLimit-Remaining
	gen     uint64    // window generation: answers to requests of an older window are stale
	issued  uint64    // requests sent
	latest  uint64    // the newest request whose answer's Remaining was applied
	blocked time.Time // a 429's Retry-After holds every request until then

	// slack is added to X-RateLimit-Reset, whose precision is a second. It starts at zero,
	// trusting the header not to name a time before the window really ends; a 429 met anyway
	// means the server rounds its reset down, and from then on the pacer waits one second
	// more.
	slack time.Duration

	// A sliding window paces a local pacer (local set: limit0 requests per window) and a
	// server-reported one whose answers carry no Remaining (limit per window): at most that
	// many requests in any interval of window plus a margin, so that the server's fixed
	// windows, whatever their phase, never see more. (A fixed window of our own, out of phase
	// with the server's, let two of ours put 4 requests into one of its: 14 429s in a naive
	// 30-day point-in-time backfill.)
	local  bool
	limit0 int
	sent   []time.Time // send times of the latest requests, oldest first
}

// newPacer returns a server-reported pacer with a documented window and default limit.
func newPacer(window time.Duration, limit int) *pacer {
	return &pacer{window: window, limit: limit}
}

// newLocalPacer returns a pacer allowing limit requests in any window.
func newLocalPacer(limit int, window time.Duration) *pacer {
	return &pacer{local: true, limit0: limit, window: window}
}

// ticket identifies a request to the pacer that let it go.
type ticket struct{ seq, gen uint64 }

// errPacedPastDeadline: the budget is spent and the window resets after ctx's deadline.
var errPacedPastDeadline = errors.New("the rate-limit window resets after the deadline")

// wait blocks until a request may be sent, or ctx ends. When the wait would outlast ctx's
// deadline it returns errPacedPastDeadline at once instead of sleeping.
func (p *pacer) wait(ctx context.Context, now func() time.Time) (ticket, error) {
	for {
		p.mu.Lock()
		tk, until, ok := p.take(now())
		p.mu.Unlock()
		if ok {
			return tk, nil
		}
		t := now()
		d := until.Sub(t) + 5*time.Millisecond
		if dl, has := ctx.Deadline(); has && t.Add(d).After(dl) {
			return ticket{}, errPacedPastDeadline
		}
		if err := sleep(ctx, d); err != nil {
			return ticket{}, err
		}
	}
}

// take spends one request of the budget, or says until when to wait. p.mu is held.
func (p *pacer) take(t time.Time) (ticket, time.Time, bool) {
	if t.Before(p.blocked) {
		return ticket{}, p.blocked, false
	}
	if p.local || !p.counted {
		limit := p.limit
		if p.local {
			limit = p.limit0
		}
		if limit > 0 {
			if until, ok := p.slide(t, limit); !ok {
				return ticket{}, until, false
			}
		}
		p.issued++
		return ticket{seq: p.issued, gen: p.gen}, time.Time{}, true
	}
	if p.open && !t.Before(p.reset) {
		p.open = false
	}
	if !p.open {
		// A new window: provisionally it ends a window from now; its first answer anchors it.
		p.gen++
		p.open, p.exact, p.anchor = true, false, false
		p.reset, p.left = t.Add(p.window), p.limit
	}
	if p.left <= 0 {
		return ticket{}, p.reset, false
	}
	p.left--
	p.slide(t, 0) // keeps the send log current should the answers stop reporting Remaining
	p.issued++
	return ticket{seq: p.issued, gen: p.gen}, time.Time{}, true
}

// slide checks t against the sliding window (at most limit requests in any interval of the
// window plus a margin) and records it when it fits; limit 0 records without checking.
func (p *pacer) slide(t time.Time, limit int) (time.Time, bool) {
	if limit > 0 && len(p.sent) >= limit {
		// The margin covers the variation of the requests' way to the server.
		until := p.sent[len(p.sent)-limit].Add(p.window + min(p.window/50, 250*time.Millisecond))
		if t.Before(until) {
			return until, false
		}
	}
	keep := max(limit, p.limit, p.limit0, 1)
	if len(p.sent) >= keep {
		n := copy(p.sent, p.sent[len(p.sent)-keep+1:])
		p.sent = p.sent[:n]
	}
	p.sent = append(p.sent, t)
	return time.Time{}, true
}

// observe learns from the headers of the answer to the request tk, received at now.
func (p *pacer) observe(tk ticket, h http.Header, now time.Time) {
	if p.local {
		return
	}
	limit, errL := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit")))
	rem, errR := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	reset, errT := parseReset(h.Get("X-RateLimit-Reset"), now)
	p.mu.Lock()
	defer p.mu.Unlock()
	if errL == nil && limit > 0 {
		p.limit = limit
	}
	if errR != nil || rem < 0 {
		// Nothing tells what is left: count locally, in a sliding window.
		p.counted, p.open = false, false
		return
	}
	if errL != nil && rem+1 > p.limit {
		p.limit = rem + 1 // the server allows more than the default assumed
	}
	if p.limit > 0 && rem > p.limit {
		rem = p.limit
	}
	// Answers arrive out of order: only the newest request's answer tells the current budget,
	// and only while the window it was sent in is still the pacer's.
	if tk.seq <= p.latest || (p.counted && p.open && tk.gen != p.gen) {
		return
	}
	p.latest = tk.seq
	left := max(0, rem-int(p.issued-tk.seq)) // the requests sent after tk are not counted yet
	switch {
	case errT == nil:
		p.counted, p.open, p.exact, p.anchor = true, true, true, true
		p.reset, p.left = reset.Add(p.slack), left
	case !p.counted || !p.open || left > p.left:
		// A window this pacer has not seen, or a rollover: the server's window began no
		// later than this answer, so it ends no later than a window from now.
		p.gen++
		p.counted, p.open, p.exact, p.anchor = true, true, false, true
		p.reset, p.left = now.Add(p.window), left
	case !p.anchor:
		// The first answer of a window the pacer opened: anchor it here.
		p.reset, p.anchor, p.left = now.Add(p.window), true, min(p.left, left)
	default:
		p.left = min(p.left, left)
	}
}

// block makes the pacer hold every request until t (after a 429).
func (p *pacer) block(until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until.After(p.blocked) {
		p.blocked = until
	}
	// The window the 429 came from is spent; the next request opens a new one.
	p.open = false
	if p.exact {
		p.slack = time.Second
	}
}

// parseReset reads X-RateLimit-Reset: epoch seconds (or milliseconds), or seconds from now
// when the value is small.
func parseReset(v string, now time.Time) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("invalid X-RateLimit-Reset %q", v)
	}
	var t time.Time
	switch {
	case n > 1e12:
		t = time.UnixMilli(n)
	case n > 1e9:
		t = time.Unix(n, 0)
	default:
		t = now.Add(time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second)
	}
	// A reset far ahead (a hostile answer, a skewed clock) must not stall the pacer for
	// hours: it holds requests at most maxRetryAfter, like Retry-After.
	if limit := now.Add(maxRetryAfter); t.After(limit) {
		t = limit
	}
	return t, nil
}

// parseRetryAfter reads Retry-After (seconds or an HTTP date), clamped to [0, maxRetryAfter].
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		return min(max(d, 0), maxRetryAfter), true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
