package storage

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A writer with a gap sends an idle writer's row after flushInterval, but a batch that follows
// another waits for the gap and takes every row that came meanwhile: one INSERT for them all.
func TestGroupWriterGap(t *testing.T) {
	const gap = 400 * time.Millisecond
	s := &Store{cfg: Config{}.withDefaults(), log: zerolog.Nop()}
	var (
		mu    sync.Mutex
		sends []time.Time
		sizes []int
	)
	w := newGroupWriter(s, "t", groupOptions{batchRows: 100, bufferRows: 800, workers: 1,
		flushInterval: 10 * time.Millisecond, minGap: gap}, flat(func(_ context.Context, rows []int) error {
		mu.Lock()
		defer mu.Unlock()
		sends, sizes = append(sends, time.Now()), append(sizes, len(rows))
		return nil
	}))
	defer w.close()
	ctx := context.Background()

	start := time.Now()
	require.NoError(t, w.write(ctx, []int{1}))
	assert.Less(t, time.Since(start), gap/2, "an idle writer's row waits flushInterval, not the gap")

	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, w.write(ctx, []int{i, i}))
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, sends, 2, "the five writes after the first share one INSERT")
	assert.Equal(t, []int{1, 10}, sizes)
	// sends[0] is taken after the first batch left, so a loaded machine shortens the measured gap.
	assert.GreaterOrEqual(t, sends[1].Sub(sends[0]), gap*3/4, "the second batch waits for the gap")
}

// A full batch does not wait for the gap.
func TestGroupWriterGapFullBatch(t *testing.T) {
	s := &Store{cfg: Config{}.withDefaults(), log: zerolog.Nop()}
	var sizes []int
	w := newGroupWriter(s, "t", groupOptions{batchRows: 4, bufferRows: 8, workers: 1,
		flushInterval: 10 * time.Millisecond, minGap: time.Hour}, flat(func(_ context.Context, rows []int) error {
		sizes = append(sizes, len(rows))
		return nil
	}))
	defer w.close()
	// With the gap an hour, the second write would wait for it: it must not.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.write(ctx, []int{1}))
	require.NoError(t, w.write(ctx, []int{1, 2, 3, 4}))
	assert.Equal(t, []int{1, 4}, sizes)
}

// The users table's native columns are the columns CurrentUsers reads, in the same order.
func TestUserColsAreUserColumns(t *testing.T) {
	assert.Equal(t, "INSERT INTO {db}.users ("+strings.Join(strings.Fields(userColumns), " ")+") VALUES", userCols().query("users"))
}
