package events_test

import (
	"context"
	"encoding/json"
	"strconv"
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
