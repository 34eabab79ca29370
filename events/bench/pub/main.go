// Command pub measures the events publisher (Bus.Publish, JetStream acks awaited, Nats-Msg-Id
// set) against a running server: -msgs messages of exactly -size bytes each (the encoded
// CloudEvents envelope), in Publish calls of -batch messages. It prints one line:
// "msgs=<n> size=<bytes> seconds=<s> msgs_per_sec=<rate>".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS URL")
	msgs := flag.Int("msgs", 100000, "messages to publish")
	size := flag.Int("size", 1024, "bytes per message (the whole envelope)")
	batch := flag.Int("batch", 1000, "messages per Publish call")
	inflight := flag.Int("inflight", events.DefaultMaxInFlight, "Config.MaxInFlight")
	window := flag.Duration("dupwindow", 2*time.Minute, "the stream's duplicate window (nats bench's default is 2m)")
	replicas := flag.Int("replicas", 1, "replicas of the stream (3 on a 3-node cluster)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pub:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "pub:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*url, *msgs, *size, *batch, *inflight, *replicas, *window); err != nil {
		fmt.Fprintln(os.Stderr, "pub:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(url string, n, size, batch, inflight, replicas int, window time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nc, err := events.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	bus, err := events.NewBus(ctx, nc, events.Config{Stream: "BENCH", Subjects: []string{"saas.>"}, KVPrefix: "bench", MaxInFlight: inflight, DuplicateWindow: window, Replicas: replicas})
	if err != nil {
		return err
	}
	stream, err := bus.JetStream().Stream(ctx, "BENCH")
	if err != nil {
		return err
	}
	if err := stream.Purge(ctx); err != nil {
		return err
	}
	// A run-unique id prefix keeps ids fresh across runs in the same dedup window.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	envs, err := Envelopes(run, n, size)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		if err := bus.Publish(ctx, envs[i:min(i+batch, n)]); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("msgs=%d size=%d seconds=%.3f msgs_per_sec=%.0f\n", n, size, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	return nil
}

// Envelopes builds n distinct saas.usage.updated envelopes whose JSON encoding is exactly size
// bytes, padding the data's last_event_type.
func Envelopes(run string, n, size int) ([]events.Envelope, error) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	envs := make([]events.Envelope, n)
	for i := range envs {
		id := fmt.Sprintf("bench:usage:%s:%09d", run, i)
		data := events.UsageUpdated{TenantID: "bench", App: "greenhouse", UserID: int64(i), LastActivityAt: at, EventsInPoll: 1}
		env, err := events.NewEnvelope("bench", events.TypeUsageUpdated, id, "users/"+strconv.Itoa(i), at, data)
		if err != nil {
			return nil, err
		}
		b, err := envJSONLen(env)
		if err != nil {
			return nil, err
		}
		if b > size {
			return nil, fmt.Errorf("size %d is below the smallest envelope (%d bytes)", size, b)
		}
		data.LastEventType = strings.Repeat("x", size-b)
		if env, err = events.NewEnvelope("bench", events.TypeUsageUpdated, id, "users/"+strconv.Itoa(i), at, data); err != nil {
			return nil, err
		}
		envs[i] = env
	}
	return envs, nil
}
