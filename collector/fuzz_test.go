package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// fuzzRoutes are the route shapes FuzzAPI sends requests to; the fuzzer picks one, a method
// and a tenant id, and writes the body.
var fuzzRoutes = []string{
	"/v1/tenants/%s/connections/greenhouse",
	"/v1/tenants/%s/connections/greenhouse/sync",
	"/v1/tenants/%s/licenses",
	"/v1/tenants/%s/usage/summary",
	"/v1/connections",
	"/healthz",
}

var fuzzMethods = []string{http.MethodPut, http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPatch}

// FuzzAPI sends arbitrary requests to the API of a real replica (embedded NATS, ClickHouse)
// whose Greenhouse is a simulator: whatever the method, tenant id, query and body, the answer
// is a known status with a JSON body, a 4xx names its error code, neither the client secret
// of the request nor the stored tenant's is in it, and nothing panics or hangs. Seeds are in testdata/fuzz/FuzzAPI and below;
// run it with `go test ./collector -run XXX -fuzz FuzzAPI -fuzztime 60s`.
func FuzzAPI(f *testing.F) {
	g := startSim(f, nil)
	org := g.addOrg(f, simulator.OrgSpec{Name: "fuzz", Seed: 77, Users: 20, Events: 100})
	simURL, _ := url.Parse(g.URL)
	// Greenhouse requests may only reach the simulator: a fuzzed endpoint elsewhere fails at
	// once instead of waiting on a network this test does not have.
	client := &http.Client{Transport: hostOnly{host: simURL.Host, rt: http.DefaultTransport}, Timeout: 10 * time.Second}

	cfg := testConfig(f, storagetest.Database(f))
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	app, err := collector.Start(ctx, cfg, zerolog.Nop(), collector.Options{HTTPClient: client})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(app.Close)
	handler := app.Service.Handler()

	c := org.Credentials()
	valid, _ := json.Marshal(connectBody(org, g.URL))
	f.Add(uint8(0), uint8(0), "fuzz", "", true, valid)
	f.Add(uint8(0), uint8(0), "fuzz", "", false, valid)
	f.Add(uint8(0), uint8(0), "../fuzz", "", true, valid)
	f.Add(uint8(0), uint8(0), "fuzz", "", true, []byte(`{"client_id":"a","client_secret":"b","admin_user_id":"1"}`))
	f.Add(uint8(0), uint8(0), "fuzz", "", true, []byte(`{"api_key":"0123456789abcdef0123456789abcdef","admin_user_id":1}`))
	f.Add(uint8(0), uint8(0), "fuzz", "", true, []byte(`{"client_id":"`+c.ClientID+`","client_secret":"wrong-secret-1","admin_user_id":1,"endpoints":{"auth":"`+g.URL+`"},"settings":{"users_interval":"1s"}}`))
	f.Add(uint8(0), uint8(0), "fuzz", "", true, []byte(`{"client_id":"x","client_secret":"y","admin_user_id":1,"endpoints":{"harvest":"http://169.254.169.254"}}`))
	f.Add(uint8(0), uint8(0), "t", "", true, []byte(`{"client_id":"x","client_secret":"y","admin_user_id":1,"extra":1}`))
	f.Add(uint8(0), uint8(0), "t", "", true, []byte(`{} {}`))
	f.Add(uint8(1), uint8(1), "fuzz", "", true, []byte(nil))
	f.Add(uint8(1), uint8(2), "fuzz", "", true, []byte(nil))
	f.Add(uint8(2), uint8(1), "fuzz", "status=inactive&limit=5", true, []byte(nil))
	f.Add(uint8(2), uint8(1), "fuzz", "limit=-1&cursor=%00", true, []byte(nil))
	f.Add(uint8(3), uint8(1), "fuzz", "", true, []byte(nil))
	f.Add(uint8(4), uint8(1), "", "", true, []byte(nil))
	f.Add(uint8(0), uint8(3), "fuzz", "", true, []byte(nil))
	f.Add(uint8(5), uint8(4), "", "", false, []byte("x"))

	known := map[int]bool{200: true, 202: true, 204: true, 400: true, 401: true, 404: true, 405: true, 409: true, 413: true, 422: true, 503: true}
	f.Fuzz(func(t *testing.T, route, method uint8, tenant, query string, auth bool, body []byte) {
		path := strings.Replace(fuzzRoutes[int(route)%len(fuzzRoutes)], "%s", url.PathEscape(tenant), 1)
		target := path
		if query != "" {
			target += "?" + url.PathEscape(query)
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		req.Header.Set("Content-Type", "application/json")
		rctx, cancel := context.WithTimeout(req.Context(), 20*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		// A hang is a failure too: the request's context ends after 20 s, the answer must
		// come soon after.
		done := make(chan struct{})
		go func() {
			defer close(done)
			handler.ServeHTTP(rec, req.WithContext(rctx))
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("%s %s: no answer within 30 s; goroutines:\n%s", req.Method, target, buf[:runtime.Stack(buf, true)])
		}

		if !known[rec.Code] {
			t.Fatalf("%s %s: status %d: %s", req.Method, target, rec.Code, rec.Body)
		}
		if rec.Code == 204 || (rec.Code == 405 && rec.Body.Len() == 0) {
			return
		}
		var out struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
			Checks []struct {
				Status, Code, Message string
			} `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not JSON: %q", req.Method, target, rec.Code, rec.Body)
		}
		switch {
		case rec.Code == 422:
			// A connection document whose failed check says why.
			failed := false
			for _, c := range out.Checks {
				failed = failed || (c.Status == "failed" && c.Code != "" && c.Message != "")
			}
			if !failed {
				t.Fatalf("%s %s: 422 without a failed check with code and message: %s", req.Method, target, rec.Body)
			}
		case rec.Code >= 400 && rec.Code != 405 && (out.Error == nil || out.Error.Code == "" || out.Error.Message == ""):
			t.Fatalf("%s %s: status %d without an error code and message: %s", req.Method, target, rec.Code, rec.Body)
		}
		var in struct {
			ClientSecret string `json:"client_secret"`
		}
		if json.Unmarshal(body, &in) == nil && len(in.ClientSecret) >= 6 && strings.Contains(rec.Body.String(), in.ClientSecret) {
			t.Fatalf("%s %s: the answer echoes the client secret: %s", req.Method, target, rec.Body)
		}
		if strings.Contains(rec.Body.String(), c.ClientSecret) {
			t.Fatalf("%s %s: the answer carries the stored tenant's client secret: %s", req.Method, target, rec.Body)
		}
	})
}

// hostOnly is a transport that reaches one host and refuses every other at once.
type hostOnly struct {
	host string
	rt   http.RoundTripper
}

func (h hostOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != h.host {
		return nil, errors.New("fuzz: only the simulator is reachable")
	}
	return h.rt.RoundTrip(r)
}
