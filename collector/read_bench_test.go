package collector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// BenchmarkReadAPIAnswers times whole answers of the read API (handler, NATS state, ClickHouse,
// JSON) in process on the query fixture of storage's benchmarks (tenant big: 10,000 users,
// 10,000,000 audit events; loaded by storage/bench/compare.sh read into $BENCH_DB), with the
// service's clock at the fixture's time. It reports the median and the 95th percentile in ms.
//
//	CLICKHOUSE_ADDR=… BENCH_DB=bench_fixture storage/bench/compare.sh read
//	CLICKHOUSE_ADDR=… BENCH_DB=bench_fixture go test ./collector -run '^$' -bench ReadAPIAnswers -benchtime 50x
func BenchmarkReadAPIAnswers(b *testing.B) {
	db := os.Getenv("BENCH_DB")
	if db == "" {
		b.Skip("BENCH_DB names the database of storage's query fixture")
	}
	now := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.APIToken = "bench-token-0123456789"
	cfg.DataDir = b.TempDir()
	cfg.ClickHouseAddr = storagetest.Addr(b)
	cfg.ClickHouseDatabase = db
	cfg.SecretKeys = "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := Start(ctx, cfg, zerolog.Nop(), Options{Now: func() time.Time { return now }})
	require.NoError(b, err)
	defer app.Close()
	s := app.Service
	// The tenant as a connected one would be after its backfill (no secret: nothing syncs).
	for _, tenant := range []string{"big", "t1"} {
		_, err = s.api.conns.kv.Put(ctx, connectionKey(tenant), storedConnection{Doc: events.Connection{TenantID: tenant, App: connectors.AppGreenhouse, State: StateConnected,
			UsageData: true, Settings: events.Settings{InactiveAfterDays: 30, UsersInterval: "1h", AuditInterval: "5m"}, UpdatedAt: now}})
		require.NoError(b, err)
		_, err = createOrUpdate[checkpoint](ctx, s.api.checkpoints.kv, connectionKey(tenant), checkpoint{CoverageStart: now.AddDate(0, 0, -31), ActivityThrough: now, AuditThrough: now}, 0)
		require.NoError(b, err)
	}
	h := s.Handler()
	get := func(path string, out any) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+cfg.APIToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if out != nil {
			require.NoError(b, json.Unmarshal(rec.Body.Bytes(), out))
		}
		return rec.Code
	}
	var first UsersPage
	require.Equal(b, 200, get("/v1/tenants/big/users?sort=last_activity_at&limit=100", &first))
	require.Equal(b, 10_000, first.Total)
	user := first.Users[42].UserID
	cases := []struct{ name, path string }{
		{"ListFirstPage", "/v1/tenants/big/users?sort=last_activity_at&order=desc&limit=100"},
		{"ListFirstPageFiltered", "/v1/tenants/big/users?usage=inactive&license_type=job_admin&q=user%201&sort=name&limit=100"},
		{"ListNextPage", "/v1/tenants/big/users?sort=last_activity_at&limit=100&cursor=" + url.QueryEscape(first.NextCursor)},
		{"UserDetail", "/v1/tenants/big/users/" + jsonNumber(user)},
		{"TrendDay30", "/v1/tenants/big/trends?bucket=day"},
		{"TrendMonth12", "/v1/tenants/big/trends?bucket=month&from=2023-08-01"},
	}
	// The CSV export streams: the heap it adds does not grow with the rows (2,000 users of t1
	// against 10,000 of big, every row of each, to a writer that keeps nothing). The collector
	// runs at GOGC=10 here, so that the peak follows what is live rather than garbage the
	// collector has not come to yet.
	for _, tenant := range []string{"t1", "big"} {
		b.Run("CSVExport_"+tenant, func(b *testing.B) {
			defer debug.SetGCPercent(debug.SetGCPercent(10))
			var peak uint64
			rows := 0
			for b.Loop() {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				done := make(chan struct{})
				sampled := make(chan uint64)
				go func() {
					var top uint64
					tick := time.NewTicker(time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-done:
							sampled <- top
							return
						case <-tick.C:
							var ms runtime.MemStats
							runtime.ReadMemStats(&ms)
							if ms.HeapAlloc > base && ms.HeapAlloc-base > top {
								top = ms.HeapAlloc - base
							}
						}
					}
				}()
				req := httptest.NewRequest(http.MethodGet, "/v1/tenants/"+tenant+"/users?sort=name", nil)
				req.Header.Set("Authorization", "Bearer "+cfg.APIToken)
				req.Header.Set("Accept", "text/csv")
				w := &countingWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				close(done)
				peak = max(peak, <-sampled)
				require.Equal(b, 200, w.code)
				rows = w.lines - 1
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
			b.ReportMetric(float64(rows), "rows")
		})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				start := time.Now()
				code := get(c.path, nil)
				times = append(times, time.Since(start))
				require.Equal(b, 200, code, c.path)
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median_ms")
			b.ReportMetric(float64(times[(len(times)*95+99)/100-1].Microseconds())/1000, "p95_ms")
		})
	}
}

// countingWriter is a ResponseWriter that counts lines and keeps nothing.
type countingWriter struct {
	header http.Header
	code   int
	lines  int
}

func (w *countingWriter) Header() http.Header  { return w.header }
func (w *countingWriter) WriteHeader(code int) { w.code = code }
func (w *countingWriter) Flush()               {}
func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }
