package greenhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedWindows is a server's rate limit: limit requests per fixed window of length window,
// windows starting at phase (mod window). It answers with the headers named in send.
type fixedWindows struct {
	limit  int
	window time.Duration
	phase  time.Duration
	send   string // any of "L" (Limit), "R" (Remaining), "T" (Reset), "A" (Retry-After on 429)
	used   map[int64]int
	n429   int
}

func (s *fixedWindows) has(c byte) bool {
	for i := range len(s.send) {
		if s.send[i] == c {
			return true
		}
	}
	return false
}

// serve counts a request processed at t and returns the answer's headers and status.
func (s *fixedWindows) serve(t time.Time) (http.Header, int) {
	rel := t.Sub(time.Unix(0, 0)) - s.phase
	idx := int64(rel / s.window)
	end := time.Unix(0, 0).Add(s.phase + time.Duration(idx+1)*s.window)
	s.used[idx]++
	h := http.Header{}
	if s.used[idx] > s.limit {
		s.n429++
		if s.has('A') {
			h.Set("Retry-After", strconv.Itoa(int((end.Sub(t)+time.Second-1)/time.Second)))
		}
		if s.has('T') {
			h.Set("X-RateLimit-Reset", strconv.FormatInt((end.UnixMilli()+999)/1000, 10))
		}
		return h, 429
	}
	if s.has('L') {
		h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
	}
	if s.has('R') {
		h.Set("X-RateLimit-Remaining", strconv.Itoa(s.limit-s.used[idx]))
	}
	if s.has('T') {
		h.Set("X-RateLimit-Reset", strconv.FormatInt((end.UnixMilli()+999)/1000, 10))
	}
	return h, 200
}

// drive sends n requests one after another through p against s on a simulated clock (each
// request 2 ms to the server, 2 ms back), handling 429s as Client.send does, and returns the
// time taken. It fails when a request waits more than two windows: a pacer that stops.
func drive(t *testing.T, p *pacer, s *fixedWindows, n int, start time.Time) time.Duration {
	t.Helper()
	now := start
	for i := 0; i < n; {
		tk, until, ok := p.take(now)
		if !ok {
			if until.Sub(now) > 2*s.window {
				t.Fatalf("request %d: the pacer holds requests %v (window %v): it stopped", i, until.Sub(now), s.window)
			}
			now = until.Add(5 * time.Millisecond)
			continue
		}
		h, status := s.serve(now.Add(2 * time.Millisecond))
		now = now.Add(4 * time.Millisecond)
		p.observe(tk, h, now)
		if status == 429 {
			wait, ok := parseRetryAfter(h.Get("Retry-After"), now)
			if !ok {
				wait = 250 * time.Millisecond
			}
			p.block(now.Add(wait))
			continue
		}
		i++
	}
	return now.Sub(start)
}

// TestPacerHeaderSubsets paces 1,000 requests against fixed windows of 50 per 10 s (the Audit
// Log's) for every subset of the rate-limit headers an answer may carry, at random phases:
// never a 429 where the headers or the documented window allow avoiding one, never stopped,
// and within 10% of the floor (19 windows waited out). Greenhouse's Audit Log sends only
// Limit and Remaining; before pacing learned windows without Reset that subset stopped at the
// 51st request.
func TestPacerHeaderSubsets(t *testing.T) {
	const n, limit, window = 1000, 50, 10 * time.Second
	floor := time.Duration((n+limit-1)/limit-1) * window
	for _, send := range []string{"LRTA", "LRA", "LR", "RA", "R", "LA", "L", "A", "", "LTA", "T"} {
		for trial := range 5 {
			t.Run(fmt.Sprintf("%q/%d", send, trial), func(t *testing.T) {
				phase := time.Duration(rand.Int64N(int64(window)))
				s := &fixedWindows{limit: limit, window: window, phase: phase, send: send, used: map[int64]int{}}
				p := newPacer(window, defaultLimits[kindAudit])
				start := time.Unix(1_780_000_000, 0).Add(time.Duration(rand.Int64N(int64(window))))
				d := drive(t, p, s, n, start)
				t.Logf("%v, ratio %.3f", d, d.Seconds()/floor.Seconds())
				assert.Zero(t, s.n429, "429s")
				assert.LessOrEqual(t, d, floor*11/10, "%v against a floor of %v", d, floor)
			})
		}
	}
}

// TestPacerLearnsHigherLimit: Harvest's limit is not documented (75 in practice); the pacer
// starts from 50 per 30 s and uses what X-RateLimit-Limit or -Remaining announce.
func TestPacerLearnsHigherLimit(t *testing.T) {
	const window = 30 * time.Second
	for _, send := range []string{"LR", "R", "LRT"} {
		t.Run(send, func(t *testing.T) {
			s := &fixedWindows{limit: 75, window: window, send: send, used: map[int64]int{}}
			p := newPacer(window, defaultLimits[kindHarvest])
			d := drive(t, p, s, 750, time.Unix(1_780_000_003, 0))
			assert.Zero(t, s.n429)
			assert.LessOrEqual(t, d, 10*window, "75 per window, not 50")
		})
	}
}

// TestPacerSharedBudget: when something else spends the same credential's budget, Remaining
// says so and the pacer holds back; without Reset it still never waits past a window.
func TestPacerSharedBudget(t *testing.T) {
	const window = 10 * time.Second
	s := &fixedWindows{limit: 50, window: window, send: "LR", used: map[int64]int{}}
	start := time.Unix(1_780_000_000, 0)
	s.used[int64(start.Sub(time.Unix(0, 0))/window)] = 40 // another client took 40
	p := newPacer(window, 50)
	drive(t, p, s, 200, start)
	assert.Zero(t, s.n429)
}

// TestPacerOutOfOrderAnswers: with several requests in flight an older request's answer,
// arriving last, reports more budget than is left; the pacer keeps the newer figure.
func TestPacerOutOfOrderAnswers(t *testing.T) {
	p := newPacer(10*time.Second, 50)
	now := time.Unix(1_780_000_000, 0)
	var tks []ticket
	for range 3 {
		tk, _, ok := p.take(now)
		require.True(t, ok)
		tks = append(tks, tk)
	}
	h := func(rem int) http.Header {
		return http.Header{"X-Ratelimit-Limit": {"50"}, "X-Ratelimit-Remaining": {strconv.Itoa(rem)}}
	}
	p.observe(tks[2], h(2), now) // the newest request: 2 left
	p.observe(tks[0], h(4), now) // an older answer: stale
	p.observe(tks[1], h(3), now)
	for range 2 {
		_, _, ok := p.take(now)
		require.True(t, ok)
	}
	_, until, ok := p.take(now)
	assert.False(t, ok, "the budget the newest answer reported is spent")
	assert.Equal(t, now.Add(10*time.Second), until, "held until a window after the answer")
}

func TestPacerWaits(t *testing.T) {
	ctx := context.Background()
	spent := func() *pacer {
		p := newPacer(10*time.Second, 50)
		tk, _, _ := p.take(time.Now())
		p.observe(tk, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(time.Now().Add(10*time.Second).Unix(), 10)}}, time.Now())
		return p
	}
	t.Run("spends the reported budget, then waits for the reset", func(t *testing.T) {
		p := newPacer(10*time.Second, 50)
		now := time.Now()
		tk, _, _ := p.take(now)
		h := http.Header{}
		h.Set("X-RateLimit-Limit", "75")
		h.Set("X-RateLimit-Remaining", "2")
		h.Set("X-RateLimit-Reset", fmt.Sprint(now.Add(300*time.Millisecond).UnixMilli()))
		p.observe(tk, h, now)
		assert.Equal(t, 75, p.limit, "the limit is learned")
		for range 2 {
			_, err := p.wait(ctx, time.Now)
			require.NoError(t, err)
		}
		start := time.Now()
		_, err := p.wait(ctx, time.Now)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "waited for the reset")
	})
	t.Run("a reset beyond the deadline fails at once", func(t *testing.T) {
		p := spent()
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.wait(ctx, time.Now)
		assert.ErrorIs(t, err, errPacedPastDeadline)
		assert.Less(t, time.Since(start), 100*time.Millisecond)
	})
	t.Run("cancellation wakes a wait", func(t *testing.T) {
		p := spent()
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := p.wait(ctx, time.Now)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("local limiter: 3 per window", func(t *testing.T) {
		p := newLocalPacer(3, 200*time.Millisecond)
		start := time.Now()
		for range 3 {
			_, err := p.wait(ctx, time.Now)
			require.NoError(t, err)
		}
		assert.Less(t, time.Since(start), 50*time.Millisecond)
		_, err := p.wait(ctx, time.Now)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "the fourth waits for the next window")
	})
	t.Run("a 429 holds the class for its Retry-After", func(t *testing.T) {
		p := newPacer(10*time.Second, 50)
		now := time.Now()
		p.block(now.Add(2 * time.Second))
		_, until, ok := p.take(now)
		assert.False(t, ok)
		assert.Equal(t, now.Add(2*time.Second), until)
	})
}
