package greenhouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

// These tests hold the connector to what Greenhouse documents where the simulator's two
// profiles cannot show it (docs/greenhouse-wire.md, "Assumptions").

// wholeSecond is the only time form the connector sends: UTC, whole seconds.
var wholeSecond = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// TestAuditHitsNeverCompletesAFullPage: hits is not documented. A server whose hits is the
// page's count (or absent, or capped) must still have every event read: a window whose page
// holds size results is split, never taken as complete.
func TestAuditHitsNeverCompletesAFullPage(t *testing.T) {
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	var times []time.Time // 1,200 events in one hour, several per second at times
	for i := range 1200 {
		times = append(times, base.Add(time.Duration(i*3)*time.Second+time.Duration(i%7)*time.Millisecond))
	}
	for _, variant := range []string{"page count", "absent", "capped at 500"} {
		t.Run(variant, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				for _, p := range []string{"after_time", "before_time"} {
					if !wholeSecond.MatchString(q.Get(p)) {
						w.WriteHeader(422)
						_, _ = fmt.Fprintf(w, `{"message":"%s must be whole seconds"}`, p)
						return
					}
				}
				from, _ := time.Parse(time.RFC3339, q.Get("after_time"))
				to, _ := time.Parse(time.RFC3339, q.Get("before_time"))
				size, _ := strconv.Atoi(r.Header.Get("Size"))
				var match []int
				for i, at := range times {
					if !at.Before(from) && at.Before(to) {
						match = append(match, i)
					}
				}
				sort.Sort(sort.Reverse(sort.IntSlice(match))) // newest first
				results := []map[string]any{}
				for _, i := range match[:min(size, len(match))] {
					results = append(results, map[string]any{"event_time": times[i].UTC().Format("2006-01-02T15:04:05.000Z"),
						"event": map[string]any{"type": "action", "target_type": "X"}, "request": map[string]any{"id": strconv.Itoa(i)},
						"performer": map[string]any{"type": "user", "id": 5}})
				}
				body := map[string]any{"results": results}
				switch variant {
				case "page count":
					body["hits"] = len(results)
				case "capped at 500":
					body["hits"] = min(len(match), 500)
				}
				w.Header().Set("X-RateLimit-Limit", "50")
				w.Header().Set("X-RateLimit-Remaining", "49")
				_ = json.NewEncoder(w).Encode(body)
			})
			gc := f.client(t, func(c *greenhouse.Config) { c.AuditWindow = 50 * time.Millisecond })
			ids := map[string]int{}
			require.NoError(t, gc.AuditEvents(context.Background(), base.Add(-time.Minute), time.Now(), func(b greenhouse.AuditBatch) error {
				for _, e := range b.Events {
					ids[e.RequestID]++
				}
				return nil
			}))
			assert.Len(t, ids, len(times), "every event")
			for id, n := range ids {
				require.Equal(t, 1, n, "event %s delivered %d times", id, n)
			}
		})
	}
}

// TestAuditLogScopeNotInvented: Greenhouse documents no scope name for the Audit Log, so a
// check message names none (an earlier version named "audit_log:events:list").
func TestAuditLogScopeNotInvented(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v3/users":
			if r.URL.Query().Get("ids") != "" {
				_, _ = w.Write([]byte(`[{"id":7,"site_admin":true,"primary_email":"a@x.example"}]`))
				return
			}
			_, _ = w.Write([]byte(`[]`))
		case "/events":
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`{"message":"Forbidden","errors":["Missing required scope"]}`))
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	})
	checks := f.client(t).Check(context.Background())
	var audit connectors.Check
	for _, c := range checks {
		if c.Name == "audit_log" {
			audit = c
		}
	}
	assert.Equal(t, "missing_scope", audit.Code)
	assert.NotContains(t, audit.Message, "audit_log:events:list")
	assert.Contains(t, audit.Message, "Audit Log access")
}

// TestCheckReusesTheToken: a check run on a client that holds a token uses it; it does not
// mint another (one public client reports that Greenhouse keeps one live token per
// credential, so a new one could cut short a running sync's).
func TestCheckReusesTheToken(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/users" && r.URL.Query().Get("ids") != "" {
			_, _ = w.Write([]byte(`[{"id":7,"site_admin":true,"primary_email":"a@x.example"}]`))
			return
		}
		if r.URL.Path == "/events" {
			_, _ = w.Write([]byte(`{"hits":0,"results":[]}`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	})
	gc := f.client(t)
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(context.Background())))
	require.EqualValues(t, 1, f.tokens.Load())
	for _, c := range gc.Check(context.Background()) {
		assert.Equal(t, connectors.CheckOK, c.Status, c.Name)
	}
	assert.EqualValues(t, 1, f.tokens.Load(), "the check used the token held")
}

// TestAny401RefreshesOnceAndRetriesOnce: when Greenhouse refuses a token before its expiry
// (an expiry that could not be read is assumed short, but may still be wrong), the token is
// renewed once and the request retried once; a second refusal is an error, not a loop.
func TestAny401RefreshesOnceAndRetriesOnce(t *testing.T) {
	var f *fakeGH
	f = newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-live-1" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"Unauthorized"}`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	})
	gc := f.client(t)
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(context.Background())))
	assert.EqualValues(t, 2, f.tokens.Load(), "one refresh after the 401")
	assert.EqualValues(t, 4, gc.Stats().Requests, "two tokens, the list and its one retry")

	refusing := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"message":"Unauthorized"}`))
	})
	gc = refusing.client(t)
	err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(context.Background()))
	assert.Equal(t, greenhouse.CodeInvalidClient, greenhouse.CodeOf(err))
	assert.EqualValues(t, 2, refusing.tokens.Load(), "one refresh, no loop")
}
