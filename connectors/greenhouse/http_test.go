package greenhouse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

const testSecret = "s3cr3t-VALUE-never-shown"

// fakeGH is a hand-written Greenhouse for unit tests: /token issues numbered tokens
// ("tok-live-N"), every other path is served by handle.
type fakeGH struct {
	srv    *httptest.Server
	tokens atomic.Int64
	handle func(w http.ResponseWriter, r *http.Request)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *fakeGH {
	t.Helper()
	f := &fakeGH{handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			id, secret, ok := r.BasicAuth()
			if !ok || id != "client-1" || secret != testSecret {
				w.WriteHeader(401)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			n := f.tokens.Add(1)
			time.Sleep(20 * time.Millisecond) // widen the window for concurrent refreshes
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "access_token": fmt.Sprintf("tok-live-%d", n), "expires_in": 3600})
			return
		}
		f.handle(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGH) client(t *testing.T, mut ...func(*greenhouse.Config)) *greenhouse.Client {
	t.Helper()
	cfg := greenhouse.Config{
		Endpoints: greenhouse.Endpoints{Auth: f.srv.URL, Harvest: f.srv.URL, AuditLog: f.srv.URL},
		ClientID:  "client-1", ClientSecret: testSecret, AdminUserID: 7,
		AllowInsecure: true, UnsafeAllowLoopback: true, // httptest: plain http on loopback
	}
	for _, m := range mut {
		m(&cfg)
	}
	gc, err := greenhouse.New(cfg)
	require.NoError(t, err)
	return gc
}

func noUsers(context.Context) func([]greenhouse.User) error {
	return func([]greenhouse.User) error { return nil }
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  greenhouse.Config
		code greenhouse.Code
		msg  string
	}{
		{"legacy key", greenhouse.Config{ClientID: "a7183e1b7e9ab09b8a5cfa87d1934c3c", AdminUserID: 1}, greenhouse.CodeLegacyAPIKey, "Harvest V3 (OAuth)"},
		{"no client id", greenhouse.Config{ClientSecret: testSecret, AdminUserID: 1}, "", "client id is empty"},
		{"no secret", greenhouse.Config{ClientID: "c", AdminUserID: 1}, "", "client secret is empty"},
		{"no admin", greenhouse.Config{ClientID: "c", ClientSecret: testSecret}, "", "admin user id"},
		{"bad endpoint", greenhouse.Config{ClientID: "c", ClientSecret: testSecret, AdminUserID: 1, Endpoints: greenhouse.Endpoints{Harvest: "ftp://x"}}, "", "not an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := greenhouse.New(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)
			assert.NotContains(t, err.Error(), testSecret)
			if tt.code != "" {
				assert.Equal(t, tt.code, greenhouse.CodeOf(err))
				assert.ErrorIs(t, err, greenhouse.ErrLegacyAPIKey)
				assert.NotContains(t, err.Error(), tt.cfg.ClientID, "the key is not echoed")
			}
		})
	}
	_, err := greenhouse.New(greenhouse.Config{ClientID: "a7183e1b7e9ab09b8a5cfa87d1934c3c", ClientSecret: testSecret, AdminUserID: 1})
	assert.NoError(t, err, "a hex client id with a secret is a v3 credential")
}

func TestTokenSingleFlightAndRefreshOn401(t *testing.T) {
	var refused atomic.Int64
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-live-1" {
			refused.Add(1)
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"Unauthorized","errors":["Token could not be decoded."]}`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	})
	gc := f.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(2), f.tokens.Load(), "one mint for 16 callers, one refresh for every 401 of the first token")
	assert.Positive(t, refused.Load())

	// A token refused again after the refresh is an error, not a loop.
	f2 := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"message":"Unauthorized"}`))
	})
	gc2 := f2.client(t)
	err := gc2.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil))
	assert.Equal(t, greenhouse.CodeInvalidClient, greenhouse.CodeOf(err))
	assert.Equal(t, int64(2), f2.tokens.Load(), "refreshed once, retried once")
	assert.Equal(t, int64(4), gc2.Stats().Requests, "token, list, token, list")
}

func TestRetryAfterHTTPDateWaitedExactly(t *testing.T) {
	var until atomic.Int64
	var second atomic.Int64
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if until.Load() == 0 {
			d := time.Now().Add(2 * time.Second).Truncate(time.Second)
			until.Store(d.UnixNano())
			w.Header().Set("Retry-After", d.UTC().Format(http.TimeFormat))
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"message":"Rate limit exceeded"}`))
			return
		}
		second.Store(time.Now().UnixNano())
		_, _ = w.Write([]byte(`[]`))
	})
	gc := f.client(t)
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil)))
	late := time.Duration(second.Load() - until.Load())
	assert.GreaterOrEqual(t, late, time.Duration(0), "not before the date")
	assert.Less(t, late, 300*time.Millisecond, "and not much after")
	assert.Equal(t, greenhouse.Stats{Requests: 3, Throttled: 1, Retries: 1}, gc.Stats())
}

func TestTransientFailuresRetried(t *testing.T) {
	failures := map[string]func(w http.ResponseWriter){
		"connection reset": func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		},
		"truncated body": func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte(`[{"id":1,`))
		},
		"503": func(w http.ResponseWriter) {
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`<html>Service Unavailable</html>`))
		},
	}
	for name, fail := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 2 {
					fail(w)
					return
				}
				_, _ = w.Write([]byte(`[{"id":1,"name":"A","primary_email":"a@x.example"}]`))
			})
			gc := f.client(t)
			var got []greenhouse.User
			require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, func(p []greenhouse.User) error { got = append(got, p...); return nil }))
			assert.Len(t, got, 1)
			assert.Equal(t, int64(3), n.Load(), "two failures, then the answer")
			// net/http itself retries a GET once on a connection closed before any answer.
			assert.GreaterOrEqual(t, gc.Stats().Retries, int64(1))
			if name != "connection reset" {
				assert.Equal(t, int64(2), gc.Stats().Retries)
			}
		})
	}
}

func TestRetriesStopAtDeadlineAndCancellation(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
	})
	gc := f.client(t, func(c *greenhouse.Config) { c.MaxRetries = 50 })

	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := gc.ListUsers(ctx, greenhouse.UserQuery{}, noUsers(nil))
	assert.Equal(t, greenhouse.CodeUnavailable, greenhouse.CodeOf(err))
	assert.Less(t, time.Since(start), 450*time.Millisecond, "no backoff past the deadline")

	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel2)
	start = time.Now()
	err = gc.ListUsers(ctx2, greenhouse.UserQuery{}, noUsers(nil))
	assert.Equal(t, greenhouse.CodeUnavailable, greenhouse.CodeOf(err))
	assert.Less(t, time.Since(start), time.Second, "cancellation wakes the backoff")
}

func TestPaginationFollowsLinksSafely(t *testing.T) {
	var evil atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evil.Add(1)
		_, _ = w.Write([]byte(`[]`))
	}))
	defer other.Close()

	tests := []struct {
		name  string
		link  func(base string, page int) string
		pages int
		code  greenhouse.Code
	}{
		{"as given, three pages", func(base string, page int) string {
			if page >= 3 {
				return ""
			}
			return fmt.Sprintf(`<%s/v3/users?cursor=c%d>; rel="next"`, base, page)
		}, 3, ""},
		{"loop", func(base string, page int) string { return fmt.Sprintf(`<%s/v3/users?cursor=same>; rel="next"`, base) }, 2, greenhouse.CodeUnexpectedResponse},
		{"other host", func(string, int) string { return fmt.Sprintf(`<%s/v3/users?cursor=x>; rel="next"`, other.URL) }, 1, greenhouse.CodeUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var mu sync.Mutex
			var base string
			var page atomic.Int64
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				n := int(page.Add(1))
				mu.Lock()
				log = append(log, "GET "+r.URL.RawQuery)
				mu.Unlock()
				if n > 1 {
					assert.Equal(t, fmt.Sprintf("cursor=%s", r.URL.Query().Get("cursor")), r.URL.RawQuery, "a cursor request carries nothing else")
				}
				if l := tt.link(base, n); l != "" {
					w.Header().Set("Link", l)
				}
				_, _ = fmt.Fprintf(w, `[{"id":%d,"primary_email":"u%d@x.example"}]`, 1000-n, n)
			})
			base = f.srv.URL
			gc := f.client(t)
			err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, func(p []greenhouse.User) error {
				mu.Lock()
				log = append(log, fmt.Sprintf("fn %d", p[0].ID))
				mu.Unlock()
				return nil
			})
			assert.Equal(t, tt.code, greenhouse.CodeOf(err))
			assert.Equal(t, int64(tt.pages), page.Load())
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, log)
			assert.Equal(t, "GET per_page=500&show_service_accounts=true", log[0])
			for i := 1; i < len(log); i += 2 {
				assert.True(t, strings.HasPrefix(log[i], "fn "), "page %d handed over before the next request: %v", i, log)
			}
		})
	}
	assert.Zero(t, evil.Load(), "a link to another host is never followed")
}

func TestDefaultClientRedirectsOnlyOnSameHost(t *testing.T) {
	var evil atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evil.Add(1)
		_, _ = w.Write([]byte(`[]`))
	}))
	defer other.Close()
	var target atomic.Value
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v3/users":
			http.Redirect(w, r, target.Load().(string), http.StatusFound)
		default:
			_, _ = w.Write([]byte(`[{"id":1,"primary_email":"a@x.example"}]`))
		}
	})
	gc := f.client(t)
	target.Store(f.srv.URL + "/v3/users2")
	var n int
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, func(p []greenhouse.User) error { n += len(p); return nil }))
	assert.Equal(t, 1, n, "same-host redirect followed")

	target.Store(other.URL + "/v3/users")
	err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil))
	assert.Equal(t, greenhouse.CodeUnexpectedResponse, greenhouse.CodeOf(err))
	assert.Zero(t, evil.Load(), "no request to another host")
}

func TestSecretsAndTokensNeverShown(t *testing.T) {
	var mode atomic.Value
	mode.Store("401")
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "401":
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"Unauthorized"}`))
		case "503":
			w.WriteHeader(503)
		case "429":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
		case "echo":
			// A hostile server echoing the request's Authorization header in its error body.
			w.WriteHeader(400)
			_, _ = fmt.Fprintf(w, `{"message":"bad %s"}`, r.Header.Get("Authorization"))
		}
	})
	var logs bytes.Buffer
	gc := f.client(t, func(c *greenhouse.Config) {
		c.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
		c.MaxRetries = 1
	})
	var texts []string
	for _, m := range []string{"401", "503", "429", "echo"} {
		mode.Store(m)
		err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil))
		require.Error(t, err, m)
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	bad := f.client(t, func(c *greenhouse.Config) { c.ClientID = "client-2" })
	for _, c := range bad.Check(context.Background()) {
		texts = append(texts, c.Message)
	}
	texts = append(texts, logs.String(), fmt.Sprintf("%+v", gc), fmt.Sprintf("%v", greenhouse.Config{ClientID: "c", ClientSecret: testSecret}))
	require.Positive(t, f.tokens.Load())
	assert.NotEmpty(t, logs.String(), "retries and refreshes were logged")
	all := strings.Join(texts, "\n")
	assert.NotContains(t, all, testSecret)
	assert.NotContains(t, all, "tok-live-", "no access token in errors, logs or String output")
}

func TestCheckWithHandWrittenAnswers(t *testing.T) {
	type answers struct{ admin, users, roles, audit func(w http.ResponseWriter) }
	okList := func(w http.ResponseWriter) { _, _ = w.Write([]byte(`[]`)) }
	adminIs := func(body string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) { _, _ = w.Write([]byte(body)) }
	}
	forbidden := func(body string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) { w.WriteHeader(403); _, _ = w.Write([]byte(body)) }
	}
	okAudit := func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"hits":0,"results":[]}`)) }
	site := adminIs(`[{"id":7,"primary_email":"a@x.example","site_admin":true}]`)
	tests := []struct {
		name    string
		a       answers
		want    []string
		message string // in the failed check's message
	}{
		{"healthy", answers{site, okList, okList, okAudit}, []string{"ok", "ok", "ok", "ok", "ok", "ok"}, ""},
		{"admin unknown", answers{adminIs(`[]`), okList, okList, okAudit}, []string{"ok", "failed:admin_user_invalid", "skipped", "skipped", "skipped", "skipped"}, "numeric ID of an active Site Admin"},
		{"admin deactivated", answers{adminIs(`[{"id":7,"primary_email":"a@x.example","site_admin":true,"deactivated":true}]`), okList, okList, okAudit}, []string{"ok", "failed:admin_user_invalid", "skipped", "skipped", "skipped", "skipped"}, "active"},
		{"admin not site admin", answers{adminIs(`[{"id":7,"primary_email":"a@x.example","site_admin":false}]`), okList, okList, okAudit}, []string{"ok", "failed:admin_not_site_admin", "skipped", "skipped", "skipped", "skipped"}, "Site Admin"},
		{"admin 403 site admin", answers{forbidden(`{"message":"Forbidden","errors":["The user authorizing this request must be a Site Admin."]}`), okList, okList, okAudit}, []string{"ok", "failed:admin_not_site_admin", "skipped", "skipped", "skipped", "skipped"}, "Site Admin"},
		{"roles scope, unnamed by Greenhouse", answers{site, okList, forbidden(`{"message":"Forbidden: missing scope"}`), okAudit}, []string{"ok", "ok", "ok", "failed:missing_scope", "ok", "ok"}, "harvest:user_roles:list"},
		{"audit log not enabled", answers{site, okList, okList, forbidden(`{"message":"The Audit Log add-on is not enabled for this organization."}`)}, []string{"ok", "ok", "ok", "ok", "failed:audit_log_not_enabled", "ok"}, "account management"},
		// A 404 alone may be a wrong host or region: the message names both causes.
		{"audit log 404", answers{site, okList, okList, func(w http.ResponseWriter) { w.WriteHeader(404) }}, []string{"ok", "ok", "ok", "ok", "failed:audit_log_not_found", "ok"}, "wrong host or region"},
		{"audit log 404, documented body", answers{site, okList, okList, func(w http.ResponseWriter) {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"Resource not found"}`))
		}}, []string{"ok", "ok", "ok", "ok", "failed:audit_log_not_found", "ok"}, "Audit Log add-on is not enabled"},
		{"audit log 403, documented body", answers{site, okList, okList, forbidden(`{"message":"You do not have access to that record."}`)}, []string{"ok", "ok", "ok", "ok", "failed:audit_log_forbidden", "ok"}, "add-on is not enabled"},
		{"audit log forbidden", answers{site, okList, okList, forbidden(`{"message":"Forbidden"}`)}, []string{"ok", "ok", "ok", "ok", "failed:audit_log_forbidden", "ok"}, "Audit Log"},
		// The actions check's writes go to user id 0; a 403 naming a scope is the permission
		// missing, and no scope is invented in the message.
		{"no write permission", answers{site, okList, okList, okAudit}, []string{"ok", "ok", "ok", "ok", "ok", "failed:actions_not_permitted"}, "permission to deactivate and activate users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				switch {
				case r.Method == http.MethodPost:
					assert.Contains(t, []string{"/v3/users/0/deactivate", "/v3/users/0/activate"}, r.URL.Path, "the check writes no real user")
					if tt.name == "no write permission" {
						forbidden(`{"message":"Forbidden","errors":["Missing required scope"]}`)(w)
						return
					}
					w.WriteHeader(http.StatusUnprocessableEntity)
				case r.URL.Path == "/v3/users" && q.Get("ids") != "":
					assert.Equal(t, "7", q.Get("ids"))
					assert.Equal(t, "true", q.Get("show_service_accounts"))
					assert.Equal(t, "1", q.Get("per_page"))
					tt.a.admin(w)
				case r.URL.Path == "/v3/users":
					assert.Equal(t, "1", q.Get("per_page"))
					tt.a.users(w)
				case r.URL.Path == "/events":
					assert.Equal(t, "100", q.Get("size"))
					assert.Empty(t, q.Get("paging"))
					after, err1 := time.Parse("2006-01-02T15:04:05Z", q.Get("after_time"))
					before, err2 := time.Parse("2006-01-02T15:04:05Z", q.Get("before_time"))
					require.NoError(t, errors.Join(err1, err2))
					assert.InDelta(t, time.Hour.Seconds(), before.Sub(after).Seconds(), 2, "the last hour")
					tt.a.audit(w)
				default:
					assert.Equal(t, "1", q.Get("per_page"))
					tt.a.roles(w)
				}
			})
			got := f.client(t).Check(context.Background())
			var status []string
			var names []string
			for _, c := range got {
				names = append(names, string(c.Name))
				s := string(c.Status)
				if c.Status == connectors.CheckFailed {
					s += ":" + c.Code
					assert.Contains(t, c.Message, tt.message)
				}
				status = append(status, s)
			}
			assert.Equal(t, []string{"credentials", "admin_user", "users", "permissions", "audit_log", "actions"}, names)
			assert.Equal(t, tt.want, status)
		})
	}
}
