// Package storagetest gives tests a real ClickHouse: the server at $CLICKHOUSE_ADDR, or else
// one throwaway clickhouse-server started for the whole test process, and a fresh, migrated
// database per test.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// shared is the process-wide server of Addr: started at most once, ended by its watchdog
// when the test process exits (however it exits).
var shared struct {
	once sync.Once
	addr string
	err  error
}

// Addr returns the native address of a ClickHouse for tests: $CLICKHOUSE_ADDR when set, or
// else a throwaway clickhouse-server started once for the whole test process (data in a
// temporary directory; a watchdog stops it and removes the data when the process ends).
// When neither is possible the test fails if $CI is "true" and is skipped otherwise.
func Addr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv("CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	shared.once.Do(func() {
		bin, err := FindServer()
		if err != nil {
			shared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "storagetest-clickhouse-")
		if err != nil {
			shared.err = err
			return
		}
		s, err := newServer(bin, dir, ServerOptions{}, true)
		if err == nil {
			err = s.Start()
		}
		if err != nil {
			_ = os.RemoveAll(dir)
			shared.err = err
			return
		}
		shared.addr = s.Addr()
	})
	if shared.err != nil {
		msg := "no ClickHouse for tests: " + shared.err.Error() +
			"; set CLICKHOUSE_ADDR=host:port or run deploy/local/test.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return shared.addr
}

// Database returns a fresh, unique database name on Addr(t) (not created: storage.Open
// creates it); t.Cleanup drops it.
func Database(t testing.TB) string {
	t.Helper()
	return databaseOn(t, Addr(t))
}

func databaseOn(t testing.TB, addr string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { drop(t, addr, name) })
	return name
}

// NewStore returns a store on a fresh, migrated database; t.Cleanup closes it and drops the
// database.
func NewStore(t testing.TB) *storage.Store {
	t.Helper()
	return NewStoreWithConfig(t, storage.Config{})
}

// NewStoreWithConfig is NewStore with cfg; an empty Addr or Database is filled in with
// Addr(t) and a fresh database name (dropped by t.Cleanup).
func NewStoreWithConfig(t testing.TB, cfg storage.Config) *storage.Store {
	t.Helper()
	if len(cfg.Addr) == 0 {
		cfg.Addr = []string{Addr(t)}
	}
	if cfg.Database == "" {
		cfg.Database = databaseOn(t, cfg.Addr[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate store: %v", err)
	}
	return s
}

func drop(t testing.TB, addr, name string) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Logf("drop database %s: %v", name, err)
		return
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Logf("drop database %s: %v", name, err)
	}
}

// Logger returns a zerolog logger writing to t's log.
func Logger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}
