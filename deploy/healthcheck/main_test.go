package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProbe(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte(`{"clickhouse":"ok","nats":"ok"}`))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"clickhouse":"unreachable","nats":"ok"}`))
		}
	}))
	t.Cleanup(ready.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "ready", url: ready.URL + "/readyz"},
		{name: "not ready", url: ready.URL + "/unready", wantErr: "status 503: {\"clickhouse\":\"unreachable\""},
		{name: "nothing listening", url: closedURL + "/readyz", wantErr: "connect"},
		{name: "timeout", url: ready.URL + "/slow", wantErr: "deadline exceeded"},
		{name: "bad url", url: "://nope", wantErr: "missing protocol scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := probe(ctx, tt.url)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
