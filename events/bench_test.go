package events_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// BenchmarkPublish publishes b.N saas.usage.updated events (data padded by 128 B and 1 KiB) in Publish calls of 1,000 to
// an embedded server with file storage, every ack awaited. bytes/op is the envelope size.
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run("data="+strconv.Itoa(size)+"B", func(b *testing.B) {
			srv := startServer(b, b.TempDir())
			bus := newBus(b, connect(b, srv.ClientURL()), events.Config{})
			at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			pad := make([]byte, size)
			for i := range pad {
				pad[i] = 'x'
			}
			envs := make([]events.Envelope, b.N)
			for i := range envs {
				id := "bench:usage:" + strconv.Itoa(i)
				data := events.UsageUpdated{TenantID: "bench", App: "greenhouse", UserID: int64(i), LastActivityAt: at, LastEventType: string(pad)}
				env, err := events.NewEnvelope("bench", events.TypeUsageUpdated, id, "users/"+strconv.Itoa(i), at, data)
				require.NoError(b, err)
				envs[i] = env
			}
			enc, err := json.Marshal(envs[0])
			require.NoError(b, err)
			b.SetBytes(int64(len(enc)))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += 1000 {
				if err := bus.Publish(ctx, envs[i:min(i+1000, b.N)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkKVReadAll reads 10,000 values of about 1.5 KiB (the size of a connection document)
// from the connections bucket: a key listing then a Get per key, as GET /v1/connections did,
// against Values' single pass (docs/performance.md#scale).
//
//	go test ./events -run XXX -bench KVReadAll -benchtime 5x -count 5
func BenchmarkKVReadAll(b *testing.B) {
	const n = 10000
	_, _, bus := setup(b)
	ctx := context.Background()
	kv := events.BucketKV[map[string]string](bus, events.BucketConnections)
	doc := map[string]string{}
	for i := range 12 {
		doc["field"+strconv.Itoa(i)] = strings.Repeat("x", 120)
	}
	for i := range n {
		_, err := kv.Put(ctx, "greenhouse.tenant-"+strconv.Itoa(i), doc)
		require.NoError(b, err)
	}
	b.Run("keys+get", func(b *testing.B) {
		for b.Loop() {
			got := 0
			require.NoError(b, kv.Keys(ctx, "greenhouse.", func(key string) error {
				_, _, err := kv.Get(ctx, key)
				got++
				return err
			}))
			require.Equal(b, n, got)
		}
	})
	b.Run("values", func(b *testing.B) {
		for b.Loop() {
			got := 0
			require.NoError(b, kv.Values(ctx, "greenhouse.", func(string, map[string]string, uint64) error {
				got++
				return nil
			}))
			require.Equal(b, n, got)
		}
	})
}
