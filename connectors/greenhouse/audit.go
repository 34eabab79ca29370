package greenhouse

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// auditQuery fetches one page of /events for [from, to) without paging.
func (c *Client) auditQuery(ctx context.Context, from, to time.Time, size int, pitID, searchAfter string, paging bool) (auditPage, error) {
	v := url.Values{"after_time": {auditTime(from)}, "before_time": {auditTime(to)}, "size": {strconv.Itoa(size)}}
	if paging {
		v.Set("paging", "true")
		if _, err := c.paged.wait(ctx, c.now); err != nil {
			return auditPage{}, c.paceErr("read audit log", err, nil)
		}
	}
	target := c.base[kindAudit].String() + "/events?" + v.Encode()
	p := auditPage{buf: eventBufs.Get().(*[]AuditEvent)}
	_, err := c.sendRead(ctx, "read audit log", kindAudit, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Size", strconv.Itoa(size))
		if pitID != "" {
			req.Header.Set("Pit-Id", pitID)
		}
		if searchAfter != "" {
			req.Header.Set("Search-After", searchAfter)
		}
		return req, nil
	}, true, func(body []byte) error {
		buf := p.buf
		var err error
		if p, err = decodeAuditPage(body, *buf); err != nil {
			p.buf = buf
			return &APIError{Op: "read audit log", Code: CodeUnexpectedResponse, Err: err}
		}
		p.buf = buf
		return nil
	})
	if err != nil {
		p.release()
		return auditPage{}, err
	}
	return p, nil
}

// eventBufs holds the event lists of audit pages already delivered, for the next pages to be
// decoded into (AuditEvents' fn does not keep a batch's list): a new list of 500 events for
// each page was a twentieth of the collector's allocation during an onboarding
// (docs/performance.md, "Eleventh session").
var eventBufs = sync.Pool{New: func() any { return new([]AuditEvent) }}

// release gives the page's event list back to eventBufs; p.Results must not be used after.
func (p *auditPage) release() {
	if p.buf == nil {
		return
	}
	if p.Results != nil { // nil: nothing was decoded into *p.buf
		clear(p.Results[:cap(p.Results)]) // holds no event's strings while pooled
		*p.buf = p.Results[:0]
	}
	eventBufs.Put(p.buf)
	p.buf, p.Results = nil, nil
}

func auditTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

const (
	auditPageSize = 500
	// auditTarget is the number of events a window is sized for: below the page size, so a
	// window whose density was estimated a little low still fits one request.
	auditTarget = 400
)

// AuditEvents delivers every Audit Log event in [from, to), oldest window first, each once.
// Windows are read without paging, size=500; a window with more hits than one page is split
// into ceil(hits/400) parts and the next window is sized from the density seen, so an ordinary
// window costs one request; a one-second window still too dense is read with point-in-time
// pagination (3 requests per 30 s). Windows overlap by one second and events are deduplicated
// by ID within the call. Each batch's events are sorted by time; a batch with a non-zero
// Through means every event in [from, Through) has been delivered, and Through never passes
// to. fn must not keep a batch's Events list (its events' fields it may keep): it is reused
// once fn returns. fn's error is returned as is; every other error is an *APIError.
func (c *Client) AuditEvents(ctx context.Context, from, to time.Time, fn func(AuditBatch) error) error {
	from, to = from.UTC().Truncate(time.Second), to.UTC()
	if !to.After(from) {
		return nil
	}
	// The API takes whole seconds: the last window ends at the second after to, and Through
	// is clamped to to.
	limit := to
	if to.Truncate(time.Second).Before(to) {
		to = to.Truncate(time.Second).Add(time.Second)
	}
	through := func(end time.Time) time.Time {
		if end.After(limit) {
			return limit
		}
		return end
	}
	// seen holds the ids delivered in the current overlap (pruned after each window), so
	// memory follows the window, not the range.
	seen := map[string]time.Time{}
	width := to.Sub(from)
	for start := from; start.Before(to); {
		end := start.Add(width)
		if end.After(to) {
			end = to
		}
		// Windows overlap by one second at their start: the API's boundary semantics are not
		// documented, and duplicates are dropped by id.
		qFrom := start
		if start.After(from) {
			qFrom = start.Add(-time.Second)
		}
		p, err := c.auditQuery(ctx, qFrom, end, auditPageSize, "", "", false)
		if err != nil {
			return err
		}
		// hits is not documented (a total, a capped total, or the page's count): a full page
		// is never taken as the whole window, whatever hits says.
		if p.Hits > len(p.Results) || len(p.Results) >= auditPageSize {
			p.release()
			span := end.Sub(start)
			if span <= time.Second {
				if err := c.auditPIT(ctx, qFrom, end, seen, fn); err != nil {
					return err
				}
				if err := fn(AuditBatch{Through: through(end)}); err != nil {
					return err
				}
				prune(seen, end.Add(-time.Second))
				start = end
				continue
			}
			// Split: at least in two, so that a server answering fewer results than asked
			// still makes progress.
			parts := max(2, (p.Hits+auditTarget-1)/auditTarget)
			width = max(time.Second, (span / time.Duration(parts)).Truncate(time.Second))
			continue
		}
		err = fn(AuditBatch{Events: dedup(p.Results, seen), Through: through(end)})
		p.release()
		if err != nil {
			return err
		}
		prune(seen, end.Add(-time.Second))
		start = end
		// Size the next window from the density seen here.
		if p.Hits > 0 {
			w := time.Duration(float64(end.Sub(qFrom)) * auditTarget / float64(p.Hits))
			width = max(time.Second, min(w, to.Sub(from)).Truncate(time.Second))
		} else {
			width = max(width*2, time.Second)
		}
	}
	return nil
}

// dedup drops the events already seen, records the others, and sorts them by time.
func dedup(in []AuditEvent, seen map[string]time.Time) []AuditEvent {
	out := in[:0]
	for _, e := range in {
		if _, ok := seen[e.ID]; ok {
			continue
		}
		seen[e.ID] = e.Time
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b AuditEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// prune forgets the ids of events before t: the next window starts at t.
func prune(seen map[string]time.Time, t time.Time) {
	for id, at := range seen {
		if at.Before(t) {
			delete(seen, id)
		}
	}
}

// auditPIT reads a window with point-in-time pagination. When the point in time expires, or
// the API refuses a Search-After value it gave, it opens a new one resuming at the last
// position (paging=true with Search-After and no Pit-Id), or from the window's start when the
// position itself was refused; should the API start over, the events already delivered are
// dropped by id. It gives up after three restarts in a row that deliver nothing new.
func (c *Client) auditPIT(ctx context.Context, from, to time.Time, seen map[string]time.Time, fn func(AuditBatch) error) error {
	resume := ""
	for stalls := 0; ; {
		last, progressed, err := c.auditPITOnce(ctx, from, to, resume, seen, fn)
		if err == nil || !restartablePIT(err) || refusedPosition(err) && resume == "" && last == "" {
			return err // done, or a failure a restart would only repeat
		}
		switch {
		case expiredPIT(err) && last != "":
			resume = last
		case !expiredPIT(err):
			resume = "" // the position was refused: start the window over
		}
		if progressed {
			stalls = 0
		} else if stalls++; stalls >= 3 {
			return err
		}
	}
}

// expiredPIT reports whether err is the Audit Log's answer to an expired point in time: the
// words "Pit_Id has expired" with no documented status, so recognised by message on any 4xx
// (docs/greenhouse-wire.md).
func expiredPIT(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Status == 401 || ae.Status == 429 {
		return false
	}
	m := strings.ToLower(ae.Message)
	return strings.Contains(m, "pit") && (strings.Contains(m, "expire") || strings.Contains(m, "invalid") || strings.Contains(m, "not found"))
}

// refusedPosition reports whether err is a validation answer (400 or 422) to a continuation
// request, such as a Search-After value the API does not take back.
func refusedPosition(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == 400 || ae.Status == 422) && !expiredPIT(err)
}

// restartablePIT reports whether a point-in-time read that failed with err may start again.
func restartablePIT(err error) bool { return expiredPIT(err) || refusedPosition(err) }

// auditPITOnce pages through one point in time, starting at resume ("" = the start). It
// returns the last position reached and whether it delivered new events.
func (c *Client) auditPITOnce(ctx context.Context, from, to time.Time, resume string, seen map[string]time.Time, fn func(AuditBatch) error) (last string, progressed bool, err error) {
	p, err := c.auditContinue(ctx, from, to, "", resume)
	if err != nil {
		return "", false, err
	}
	for pages := 0; ; pages++ {
		if pages > maxPages {
			p.release()
			return last, progressed, &APIError{Op: "read audit log", Code: CodeUnexpectedResponse, Message: "too many pages"}
		}
		n := len(p.Results)
		if evs := dedup(p.Results, seen); len(evs) > 0 {
			progressed = true
			err = fn(AuditBatch{Events: evs})
		}
		p.release()
		if err != nil {
			return last, progressed, err
		}
		if p.Paging == nil || p.Paging.Next == "" || n == 0 {
			return last, progressed, nil
		}
		last = p.Paging.Next
		if p, err = c.auditContinue(ctx, from, to, p.Paging.PitID, p.Paging.Next); err != nil {
			return last, progressed, err
		}
	}
}

// auditContinue requests a paginated page at the position searchAfter, as given; if the API
// refuses a value of more than two parts it asks again with the first two, and keeps to two
// parts from then on (public clients disagree on the form the API takes back).
func (c *Client) auditContinue(ctx context.Context, from, to time.Time, pitID, searchAfter string) (auditPage, error) {
	if c.twoPartSearchAfter.Load() {
		searchAfter = twoParts(searchAfter)
	}
	p, err := c.auditQuery(ctx, from, to, auditPageSize, pitID, searchAfter, true)
	if err != nil && refusedPosition(err) && twoParts(searchAfter) != searchAfter {
		c.twoPartSearchAfter.Store(true)
		c.log.Debug().Msg("audit log refused a Search-After of more than two parts; sending two")
		return c.auditQuery(ctx, from, to, auditPageSize, pitID, twoParts(searchAfter), true)
	}
	return p, err
}
