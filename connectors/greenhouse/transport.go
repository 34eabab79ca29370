package greenhouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// send performs one logical request with pacing, retries of transient failures and 429s, and
// (when auth is set) a token refresh and one retry on a 401. It returns the body of a 2xx
// answer. Every error is an *APIError.
func (c *Client) send(ctx context.Context, op string, kind endpointKind, build func() (*http.Request, error), auth bool) ([]byte, http.Header, error) {
	var body []byte
	h, err := c.sendRead(ctx, op, kind, build, auth, func(b []byte) error {
		body = bytes.Clone(b)
		return nil
	})
	return body, h, err
}

// sendRead is send for the pages of a sync: it hands the body of the 2xx answer to read, which
// must not keep it (its buffer is read into again by later answers), and returns read's error.
// Reading every answer into a fresh slice, grown as it read, was a seventh of what the
// collector allocated while tenants onboarded (docs/performance.md, "Eighth session").
func (c *Client) sendRead(ctx context.Context, op string, kind endpointKind, build func() (*http.Request, error), auth bool, read func([]byte) error) (http.Header, error) {
	refreshed := false
	var lastErr error
	for attempt := 0; ; attempt++ {
		x, netErr, err := c.exchange(ctx, op, kind, build, auth, lastErr)
		if err != nil {
			return nil, err
		}
		if netErr != nil {
			// A failed connection, a timeout, or a body cut short: transient.
			if ctx.Err() != nil {
				return nil, c.ctxErr(op, ctx.Err(), lastErr)
			}
			lastErr = &APIError{Op: op, Code: CodeUnavailable, Err: scrub(netErr)}
			if err := c.retryAfter(ctx, op, attempt, backoff(attempt), lastErr); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case x.status >= 200 && x.status < 300:
			err := read(x.body)
			x.release()
			return x.header, err
		case x.status == 429:
			c.throttled.Add(1)
			wait, ok := parseRetryAfter(x.header.Get("Retry-After"), c.now())
			if !ok {
				wait = backoff(attempt)
			}
			lastErr = &APIError{Op: op, Status: 429, Code: CodeRateLimited, RetryAfter: wait, Message: c.redact(errorMessage(x.body), x.token)}
			if !c.mayRetry(ctx, attempt, wait) {
				return nil, lastErr
			}
			// No sleep here: the pacer holds every request of this class until Retry-After
			// has passed.
			c.pacers[kind].block(c.now().Add(wait))
			c.log.Debug().Str("op", op).Dur("retry_after", wait).Msg("greenhouse request throttled")
		case x.status == 401 && auth && !refreshed:
			refreshed = true
			c.log.Debug().Str("op", op).Msg("greenhouse token refused; refreshing")
			if _, err := c.accessToken(ctx, x.token); err != nil {
				return nil, err
			}
		case x.status >= 500:
			lastErr = c.refusal(op, kind, x)
			if err := c.retryAfter(ctx, op, attempt, backoff(attempt), lastErr); err != nil {
				return nil, err
			}
		default:
			return x.header, c.refusal(op, kind, x)
		}
	}
}

// answer is what one attempt of a request got back.
type answer struct {
	status int
	header http.Header
	body   []byte
	buf    *bytes.Buffer // body's buffer, from bodyBuffers, on a 2xx answer
	token  string        // the token the request carried ("" without auth)
}

// bodyBuffers are the buffers 2xx answers are read into (a page of 500 Audit Log events is
// about 180 KB); other answers are copied out of theirs at once, being small and rare.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer put back into bodyBuffers: a rare huge answer is not
// kept alive by the pool.
const maxPooledBody = 4 << 20

// release gives x's buffer back; x.body is not to be read after it.
func (x *answer) release() {
	if x.buf != nil && x.buf.Cap() <= maxPooledBody {
		bodyBuffers.Put(x.buf)
	}
	x.buf, x.body = nil, nil
}

// exchange makes one attempt of a request: it waits for the pacer of kind, builds the request
// (with the token when auth), sends it and reads the answer, which the pacer then observes.
// A transport failure (no answer, or a body cut short) is netErr, for the caller to retry;
// err ends the request (the pacer's deadline, a request that cannot be built, a token that
// cannot be had, a body over maxBody).
func (c *Client) exchange(ctx context.Context, op string, kind endpointKind, build func() (*http.Request, error), auth bool, lastErr error) (x answer, netErr, err error) {
	tk, err := c.pacers[kind].wait(ctx, c.now)
	if err != nil {
		return x, nil, c.paceErr(op, err, lastErr)
	}
	req, err := build()
	if err != nil {
		return x, nil, &APIError{Op: op, Code: CodeUnexpectedResponse, Err: err}
	}
	if auth {
		if x.token, err = c.accessToken(ctx, ""); err != nil {
			return x, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+x.token)
	}
	req.Header.Set("Accept", "application/json")
	c.requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		return x, err, nil
	}
	x.status, x.header = resp.StatusCode, resp.Header
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	_, netErr = buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1))
	_ = resp.Body.Close()
	x.body, x.buf = buf.Bytes(), buf
	if x.status < 200 || x.status >= 300 || netErr != nil {
		body := bytes.Clone(x.body)
		x.release()
		x.body = body
	}
	if netErr == nil && len(x.body) > maxBody {
		x.release()
		return x, nil, &APIError{Op: op, Status: x.status, Code: CodeUnexpectedResponse, Message: fmt.Sprintf("response larger than %d MiB", maxBody>>20)}
	}
	c.pacers[kind].observe(tk, resp.Header, c.now())
	return x, netErr, nil
}

// refusal is the *APIError of a non-2xx answer, with the secret and token masked.
func (c *Client) refusal(op string, kind endpointKind, x answer) *APIError {
	e := classify(op, kind, x.status, x.body)
	e.Message = c.redact(e.Message, x.token)
	return e
}

// mayRetry is the one guard of every retry (a transient failure, a 5xx, a 429): it allows
// attempt another try after d unless MaxRetries are spent or d outlasts ctx's deadline, and
// counts the retry it allows.
func (c *Client) mayRetry(ctx context.Context, attempt int, d time.Duration) bool {
	if attempt >= c.cfg.MaxRetries {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && c.now().Add(d).After(dl) {
		return false
	}
	c.retries.Add(1)
	return true
}

// retryAfter sleeps d before the next attempt when mayRetry allows one; otherwise, or when
// ctx ends during the sleep, it returns why.
func (c *Client) retryAfter(ctx context.Context, op string, attempt int, d time.Duration, why error) error {
	if !c.mayRetry(ctx, attempt, d) {
		return why
	}
	c.log.Debug().Str("op", op).Int("attempt", attempt+1).Dur("wait", d).Str("code", string(CodeOf(why))).Msg("greenhouse request retried")
	if err := sleep(ctx, d); err != nil {
		return why
	}
	return nil
}

// redact masks the secret and the token should a server echo them in an error body.
func (c *Client) redact(msg, tok string) string {
	for _, s := range []string{c.cfg.ClientSecret, tok} {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

// ctxErr reports a context end, keeping the failure that was being retried.
func (c *Client) ctxErr(op string, err, last error) error {
	if last != nil {
		return last
	}
	return &APIError{Op: op, Code: CodeUnavailable, Err: err}
}

// paceErr reports a pacer that could not let a request go before ctx's deadline.
func (c *Client) paceErr(op string, err, last error) error {
	if errors.Is(err, errPacedPastDeadline) {
		return &APIError{Op: op, Code: CodeRateLimited, Message: "the rate limit leaves no request before the deadline", Err: err}
	}
	return c.ctxErr(op, err, last)
}

// backoff is capped exponential backoff with full jitter: 250 ms, 500 ms, … up to 8 s.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 5)
	return time.Duration(rand.Int64N(int64(d))) + d/2
}

// scrub removes URLs (which could carry query values) from transport errors.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}
