package events_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

type checkpoint struct {
	UsersSyncedAt time.Time `json:"users_synced_at"`
	Count         int       `json:"count"`
}

func TestKVCompareAndSet(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	kv := events.BucketKV[checkpoint](b, events.BucketCheckpoints)
	assert.Equal(t, "saas_checkpoints", kv.Bucket())
	const key = "greenhouse.acme"

	_, _, err := kv.Get(ctx, key)
	require.ErrorIs(t, err, events.ErrNotFound)

	rev1, err := kv.Create(ctx, key, checkpoint{Count: 1})
	require.NoError(t, err)
	_, err = kv.Create(ctx, key, checkpoint{Count: 99})
	require.ErrorIs(t, err, events.ErrConflict, "create of an existing key")

	rev2, err := kv.Update(ctx, key, checkpoint{Count: 2}, rev1)
	require.NoError(t, err)
	assert.Greater(t, rev2, rev1)
	_, err = kv.Update(ctx, key, checkpoint{Count: 3}, rev1)
	require.ErrorIs(t, err, events.ErrConflict, "update at a stale revision")

	v, rev, err := kv.Get(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, 2, v.Count)
	assert.Equal(t, rev2, rev)

	require.ErrorIs(t, kv.Delete(ctx, key, rev1), events.ErrConflict, "delete at a stale revision")
	require.NoError(t, kv.Delete(ctx, key, rev2))
	_, _, err = kv.Get(ctx, key)
	require.ErrorIs(t, err, events.ErrNotFound, "deleted")

	_, err = kv.Create(ctx, key, checkpoint{Count: 4})
	require.NoError(t, err, "create over a deleted key")
	_, err = kv.Put(ctx, key, checkpoint{Count: 5})
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, key, 0), "unconditional delete")
	_, _, err = kv.Get(ctx, key)
	require.ErrorIs(t, err, events.ErrNotFound)

	_, err = kv.Update(ctx, "greenhouse.nobody", checkpoint{}, 7)
	require.ErrorIs(t, err, events.ErrConflict, "update of an absent key")
}

func TestKVUnknownBucket(t *testing.T) {
	_, _, b := setup(t)
	kv := events.BucketKV[int](b, "tokens")
	_, _, err := kv.Get(t.Context(), "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown bucket "tokens"`)
}

func TestKVModifyConcurrentWriters(t *testing.T) {
	_, nc, _ := setup(t)
	// Writers on separate connections, as on separate replicas.
	const writers, increments = 6, 25
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		b := newBus(t, connect(t, nc.ConnectedUrl()), events.Config{})
		kv := events.BucketKV[checkpoint](b, events.BucketAlerts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; i++ {
				if _, _, err := kv.Modify(ctx, "greenhouse.acme", func(v checkpoint, exists bool) (checkpoint, error) {
					if !exists != (v.Count == 0) {
						return v, errors.New("exists disagrees with the value")
					}
					v.Count++
					return v, nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	kv := events.BucketKV[checkpoint](newBus(t, nc, events.Config{}), events.BucketAlerts)
	v, _, err := kv.Get(ctx, "greenhouse.acme")
	require.NoError(t, err)
	assert.Equal(t, writers*increments, v.Count, "no lost update")
}

func TestKVModifyAbortsOnCallbackError(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	kv := events.BucketKV[checkpoint](b, events.BucketAlerts)
	boom := errors.New("boom")
	_, _, err := kv.Modify(ctx, "greenhouse.acme", func(v checkpoint, _ bool) (checkpoint, error) { return v, boom })
	require.ErrorIs(t, err, boom)
	_, _, err = kv.Get(ctx, "greenhouse.acme")
	require.ErrorIs(t, err, events.ErrNotFound, "nothing written")
}

func TestKVValues(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	kv := events.BucketKV[int](b, events.BucketConnections)
	for i, k := range []string{"greenhouse.acme", "greenhouse.acme-eu", "greenhouse.globex", "bamboohr.acme", "greenhouse.gone"} {
		_, err := kv.Put(ctx, k, i)
		require.NoError(t, err)
	}
	_, err := kv.Put(ctx, "greenhouse.acme", 10) // the current value is the one read
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "greenhouse.gone", 0))

	tests := []struct {
		prefix string
		want   map[string]int
	}{
		{"", map[string]int{"bamboohr.acme": 3, "greenhouse.acme": 10, "greenhouse.acme-eu": 1, "greenhouse.globex": 2}},
		{"greenhouse.", map[string]int{"greenhouse.acme": 10, "greenhouse.acme-eu": 1, "greenhouse.globex": 2}},
		{"greenhouse.acme", map[string]int{"greenhouse.acme": 10, "greenhouse.acme-eu": 1}},
		{"workday.", map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			got := map[string]int{}
			require.NoError(t, kv.Values(ctx, tt.prefix, func(k string, v int, rev uint64) error {
				assert.NotZero(t, rev)
				got[k] = v
				return nil
			}))
			assert.Equal(t, tt.want, got)
		})
	}
	stop := errors.New("enough")
	err = kv.Values(ctx, "", func(string, int, uint64) error { return stop })
	require.ErrorIs(t, err, stop)

	// A value that does not decode is an error naming its key, not a silent gap.
	raw := events.BucketKV[string](b, events.BucketConnections)
	_, err = raw.Put(ctx, "greenhouse.text", "not a number")
	require.NoError(t, err)
	err = kv.Values(ctx, "greenhouse.", func(string, int, uint64) error { return nil })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "greenhouse.text")
}

func TestKVKeys(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	kv := events.BucketKV[int](b, events.BucketConnections)
	for _, k := range []string{"greenhouse.acme", "greenhouse.acme-eu", "greenhouse.globex", "bamboohr.acme", "greenhouse.gone"} {
		_, err := kv.Put(ctx, k, 1)
		require.NoError(t, err)
	}
	require.NoError(t, kv.Delete(ctx, "greenhouse.gone", 0))

	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"bamboohr.acme", "greenhouse.acme", "greenhouse.acme-eu", "greenhouse.globex"}},
		{"greenhouse.", []string{"greenhouse.acme", "greenhouse.acme-eu", "greenhouse.globex"}},
		{"greenhouse.acme", []string{"greenhouse.acme", "greenhouse.acme-eu"}},
		{"green", []string{"greenhouse.acme", "greenhouse.acme-eu", "greenhouse.globex"}},
		{"workday.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			var got []string
			require.NoError(t, kv.Keys(ctx, tt.prefix, func(k string) error {
				got = append(got, k)
				return nil
			}))
			sort.Strings(got)
			assert.Equal(t, tt.want, got)
		})
	}

	stop := errors.New("stop")
	calls := 0
	err := kv.Keys(ctx, "", func(string) error { calls++; return stop })
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}

func TestLeasesExpire(t *testing.T) {
	srv := startServer(t, t.TempDir())
	b := newBus(t, connect(t, srv.ClientURL()), events.Config{LeaseTTL: time.Second})
	ctx := t.Context()
	leases := events.BucketKV[string](b, events.BucketLeases)
	_, err := leases.Create(ctx, "shard.7", "replica-a")
	require.NoError(t, err)
	owner, _, err := leases.Get(ctx, "shard.7")
	require.NoError(t, err)
	assert.Equal(t, "replica-a", owner)
	require.Eventually(t, func() bool {
		_, _, err := leases.Get(ctx, "shard.7")
		return errors.Is(err, events.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond, "a lease not refreshed vanishes after the TTL")
	_, err = leases.Create(ctx, "shard.7", "replica-b")
	require.NoError(t, err, "another replica can take it")
}

// storedConnection mirrors what the collector keeps per tenant: public fields and the sealed
// client secret.
type storedConnection struct {
	TenantID     string        `json:"tenant_id"`
	ClientID     string        `json:"client_id"`
	ClientSecret events.Sealed `json:"client_secret"`
}

func TestNoPlaintextSecretOnDisk(t *testing.T) {
	dir := t.TempDir()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: dir, Port: -1})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	})
	b := newBus(t, connect(t, srv.ClientURL()), events.Config{})
	ctx := t.Context()
	sealer := newSealer(t)
	kv := events.BucketKV[storedConnection](b, events.BucketConnections)

	const (
		secret       = "gh-secret-4Q9zX7-never-on-disk"
		clientID     = "client-id-visible-marker"
		purgedSecret = "gh-secret-of-a-disconnected-tenant"
	)
	sealed, err := sealer.Seal(secret, "acme")
	require.NoError(t, err)
	_, err = kv.Put(ctx, "greenhouse.acme", storedConnection{TenantID: "acme", ClientID: clientID, ClientSecret: sealed})
	require.NoError(t, err)

	gone, err := sealer.Seal(purgedSecret, "globex")
	require.NoError(t, err)
	_, err = kv.Put(ctx, "greenhouse.globex", storedConnection{TenantID: "globex", ClientID: "globex-client", ClientSecret: gone})
	require.NoError(t, err)
	require.NoError(t, kv.Purge(ctx, "greenhouse.globex"))
	_, _, err = kv.Get(ctx, "greenhouse.globex")
	require.ErrorIs(t, err, events.ErrNotFound)

	// Stop the server so that everything is flushed, then read every byte it wrote.
	srv.Shutdown()
	srv.WaitForShutdown()
	stopped = true
	var all [][]byte
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		all = append(all, data)
		return err
	}))
	disk := bytes.Join(all, nil)
	require.NotEmpty(t, disk)
	assert.True(t, bytes.Contains(disk, []byte(clientID)), "the value itself is on disk (the scan sees stored data)")
	assert.True(t, bytes.Contains(disk, []byte(base64.StdEncoding.EncodeToString(sealed.Ciphertext))), "the sealed secret is on disk")
	assert.False(t, bytes.Contains(disk, []byte(secret)), "the plaintext secret is not on disk")
	assert.False(t, bytes.Contains(disk, []byte(purgedSecret)), "nor the purged tenant's")
}
