package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry pacing between publish rounds.
const (
	retryBackoffMin = 50 * time.Millisecond
	retryBackoffMax = 2 * time.Second
)

// PublishError is returned by Publish when not every message was acknowledged. The messages
// it counts may or may not be stored; publishing the same envelopes again is safe because the
// server drops a message whose id it has already stored within the duplicate window.
type PublishError struct {
	Total   int   // messages in the Publish call
	Unacked int   // of those, not acknowledged when Publish returned
	Err     error // why Publish gave up: the context's error or a permanent publish error
	Last    error // the last per-message failure seen, if any (timeouts, disconnects, …)
}

// Error says how many messages were not acknowledged and why.
func (e *PublishError) Error() string {
	msg := fmt.Sprintf("publish events: %d of %d messages not acknowledged", e.Unacked, e.Total)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Last != nil && !errors.Is(e.Err, e.Last) {
		msg += " (last failure: " + e.Last.Error() + ")"
	}
	return msg
}

// Unwrap returns the reason and the last failure, for errors.Is and errors.As.
func (e *PublishError) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}

// Publish publishes envs asynchronously, each with Nats-Msg-Id = its ID, keeping at most
// MaxInFlight messages un-acknowledged across all callers, and waits for every ack. Messages
// that fail or time out are published again with the same id (the server deduplicates) until
// all are acknowledged or ctx ends; an ack flagged duplicate counts as success. It returns nil
// only when every message is acknowledged. Otherwise it returns a *PublishError saying how many
// were not (wrapping ctx.Err() when the context ended), or, before publishing anything, an
// error wrapping ErrInvalidEnvelope for an envelope that fails Validate.
//
// Within one call, messages are sent in order, so on a healthy connection a subject's messages
// are stored in the order given; a message that had to be retried may land after later ones.
func (b *Bus) Publish(ctx context.Context, envs []Envelope) error {
	if len(envs) == 0 {
		return nil
	}
	enc, err := encode(envs)
	if err != nil {
		return err
	}
	msgs := enc.msgs

	if b.nc.IsClosed() {
		b.stats.failed.Add(uint64(len(msgs)))
		return &PublishError{Total: len(msgs), Unacked: len(msgs), Err: nats.ErrConnectionClosed}
	}
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	var acked atomic.Int64
	var last error
	backoff := retryBackoffMin
	for round := 0; ; round++ {
		if round > 0 {
			b.stats.retried.Add(uint64(len(pending)))
		}
		failed, roundErr, permanent, err := b.publishRound(ctx, msgs, pending, &acked)
		if roundErr != nil {
			last = roundErr
		}
		if err == nil && permanent == nil && len(failed) == 0 {
			enc.release()
			return nil
		}
		reason := err
		if reason == nil {
			reason = permanent
		}
		if reason == nil && b.nc.IsClosed() {
			reason = nats.ErrConnectionClosed
		}
		if reason == nil {
			// Every failure this round was transient: wait a little and go again.
			b.log.Debug().Int("failed", len(failed)).Int("total", len(msgs)).Int("round", round+1).
				AnErr("last_error", roundErr).Msg("republishing unacknowledged events")
			pending = failed
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
				backoff = min(2*backoff, retryBackoffMax)
				continue
			case <-ctx.Done():
				timer.Stop()
				reason = ctx.Err()
			}
		}
		unacked := len(msgs) - int(acked.Load())
		b.stats.failed.Add(uint64(unacked))
		return &PublishError{Total: len(msgs), Unacked: unacked, Err: reason, Last: last}
	}
}

// encoded are the messages of a Publish call, in one buffer. Once every message of the call
// is acknowledged, nothing refers to them any more (nats.go copies a message into its
// connection's buffer as it sends it, and forgets it with its ack), and a later call reuses
// them, buffer, messages and headers: allocated afresh for every call, they were a tenth of
// what the collector allocated onboarding (docs/performance.md, "Twelfth session"). A call
// that gave up keeps them: an unacknowledged message may still be read.
type encoded struct {
	buf  []byte
	msgs []*nats.Msg
}

// encodedList holds a few for reuse (Effective Go's leaky buffer; a sync.Pool kept every
// call's between two collections, tens of MB in use for nothing).
var encodedList = make(chan *encoded, 16)

// Bounds on what is kept for reuse: a users flush's events (docs/performance.md, "Thirteenth
// session": with 1 MiB, the calls that publish most were never reused, and their buffers
// were a sixteenth of what the collector allocated onboarding).
const (
	maxPooledBytes = 4 << 20
	maxPooledMsgs  = 8192
)

// encode validates envs and writes them as messages, each with its Nats-Msg-Id header.
func encode(envs []Envelope) (*encoded, error) {
	size := 0
	for i := range envs {
		env := &envs[i]
		if err := env.Validate(); err != nil {
			return nil, fmt.Errorf("publish events: event %d (%q): %w", i, env.ID, err)
		}
		size += encodedSizeHint(env)
	}
	var enc *encoded
	select {
	case enc = <-encodedList:
	default:
		enc = new(encoded)
	}
	buf := slices.Grow(enc.buf[:0], size)
	msgs := enc.msgs[:cap(enc.msgs)]
	for i := range envs {
		env := &envs[i]
		start := len(buf)
		var err error
		if buf, err = env.appendJSON(buf); err != nil {
			return nil, fmt.Errorf("publish events: encode event %d (%q): %w", i, env.ID, err)
		}
		if i == len(msgs) {
			msgs = append(msgs, nil)
		}
		msgs[i] = message(msgs[i], Subject(env.Tenant, env.Type), buf[start:len(buf):len(buf)], env.ID)
	}
	enc.buf, enc.msgs = buf, msgs[:len(envs)]
	return enc, nil
}

// message is m, or a new message when m is nil, set to subject, data and id.
func message(m *nats.Msg, subject string, data []byte, id string) *nats.Msg {
	if m == nil {
		return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
	}
	h := m.Header
	if v := h[jetstream.MsgIDHeader]; len(h) == 1 && len(v) == 1 {
		v[0] = id
	} else {
		h = nats.Header{jetstream.MsgIDHeader: []string{id}}
	}
	*m = nats.Msg{Subject: subject, Data: data, Header: h}
	return m
}

// release keeps the messages for a later call, every one of them acknowledged.
func (enc *encoded) release() {
	if cap(enc.buf) > maxPooledBytes || cap(enc.msgs) > maxPooledMsgs {
		return
	}
	enc.buf = enc.buf[:0]
	for _, m := range enc.msgs {
		m.Data = nil
	}
	enc.msgs = enc.msgs[:0]
	select {
	case encodedList <- enc:
	default:
	}
}

// encodedSizeHint is an upper estimate of an envelope's JSON size (escapes aside).
func encodedSizeHint(env *Envelope) int {
	return len(env.Data) + len(env.ID) + len(env.Subject) + len(env.Source) + len(env.Type) + 160
}

// inflight is one published message whose ack is awaited.
type inflight struct {
	idx int
	paf jetstream.PubAckFuture
}

// publishRound publishes msgs[idx...] once and waits for their acks. It returns the indices
// that failed transiently, the last failure, a permanent failure if one was seen, and ctx.Err()
// when the context ended first (then the awaiting goroutine finishes in the background: every
// future resolves within the ack timeout, and only then frees its in-flight slot).
func (b *Bus) publishRound(ctx context.Context, msgs []*nats.Msg, idx []int, acked *atomic.Int64) ([]int, error, error, error) {
	var (
		mu              sync.Mutex // guards failed, last and permanent
		failed          []int
		last, permanent error
		ctxErr          error
		queue           = make(chan inflight, min(len(idx), cap(b.sem)))
		done            = make(chan struct{})
		record          = func(i int, err error) {
			mu.Lock()
			failed = append(failed, i)
			last = err
			mu.Unlock()
		}
	)
	go func() {
		defer close(done)
		for it := range queue {
			select {
			case ack := <-it.paf.Ok():
				acked.Add(1)
				b.stats.acked.Add(1)
				if ack.Duplicate {
					b.stats.duplicates.Add(1)
				}
			case err := <-it.paf.Err():
				if isPermanent(err) {
					mu.Lock()
					permanent = fmt.Errorf("message %q: %w", it.paf.Msg().Header.Get(jetstream.MsgIDHeader), err)
					mu.Unlock()
				} else {
					record(it.idx, err)
				}
			}
			<-b.sem
		}
	}()

submit:
	for n, i := range idx {
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
			ctxErr = ctx.Err()
			break submit
		}
		paf, err := b.js.PublishMsgAsync(msgs[i])
		if err != nil {
			<-b.sem
			if isPermanent(err) {
				mu.Lock()
				permanent = fmt.Errorf("message %q: %w", msgs[i].Header.Get(jetstream.MsgIDHeader), err)
				mu.Unlock()
				break submit
			}
			record(i, err)
			if errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				// The connection is down or saturated: the rest of this round would fail the same
				// way. Mark them failed and let the retry backoff pace the next attempt.
				mu.Lock()
				failed = append(failed, idx[n+1:]...)
				mu.Unlock()
				break submit
			}
			continue
		}
		queue <- inflight{idx: i, paf: paf}
	}
	close(queue)
	if ctxErr == nil {
		select {
		case <-done:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if ctxErr != nil {
		return nil, last, permanent, ctxErr
	}
	return slices.Clone(failed), last, permanent, nil
}

// isPermanent reports whether a publish error cannot go away by publishing the same message
// again on the same connection.
func isPermanent(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrInvalidMsg) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
