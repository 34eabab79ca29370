// Package storage owns the ClickHouse side of the collector: the embedded, versioned schema
// migrations, the batch writers (audit events with group commit, users, license counts, sync
// runs, connection events, daily activity) and the dashboard queries.
//
// Every table is a ReplacingMergeTree keyed so that a replayed write lands on the same key:
// writers are idempotent and readers deduplicate (FINAL or uniqExact). All DateTime columns are
// DateTime('UTC'), and every time passed into a query is bound as Unix seconds, so neither the
// server's nor the client's time zone shifts a value. The SQL runs on ClickHouse 18.16 and on
// current releases; docs/schema.md documents the schema and the queries.
package storage

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
)

// DefaultDatabase is the database used when Config.Database is empty.
const DefaultDatabase = "saas"

// ErrClosed is returned by writers called after (or interrupted by) Close.
var ErrClosed = errors.New("storage: store closed")

// Config configures a Store. Only Addr is required.
type Config struct {
	// Addr lists native-protocol addresses (host:port) of the ClickHouse servers.
	Addr []string
	// Database holds the tables; created when missing. Default "saas".
	Database string
	// Username and Password authenticate; empty Username means "default".
	Username, Password string
	// Cluster, when set, names the ClickHouse cluster (remote_servers) the schema is created
	// on: CREATE … ON CLUSTER with ReplicatedReplacingMergeTree tables (replicatedDDL). Empty:
	// one server, or ClickHouse Cloud, which replicates plain ReplacingMergeTree tables itself.
	Cluster string
	// DialTimeout bounds a connection attempt. Default 5 s.
	DialTimeout time.Duration
	// MaxOpenConns bounds the connection pool. Default 8.
	MaxOpenConns int
	// Logger receives one line per failed flush attempt and per migration; default Nop.
	Logger zerolog.Logger

	// AuditBatchRows is the group-commit batch size of InsertAuditEvents. Default 50,000.
	AuditBatchRows int
	// AuditFlushInterval is how long a pending audit row waits for more before it is flushed.
	// Default 1 s: a routine poll of every tenant stores a few rows (at least the collector's
	// own harvest_access events), and each INSERT is a part ClickHouse merges again; at 1,000
	// tenants a 200-ms flush spent more of ClickHouse's CPU merging than anything else
	// (docs/performance.md, "Seventh session"). The poll gives its worker back while it waits.
	// user_activity_daily's writer flushes as often, at AuditBatchRows rows.
	AuditFlushInterval time.Duration
	// AuditBufferRows bounds the audit rows accepted but not yet written; callers block
	// (backpressure) when it is full. Default 4 × AuditBatchRows.
	AuditBufferRows int
	// AuditWorkers is the number of concurrent audit INSERTs. Default 2.
	AuditWorkers int
	// RowFlushInterval is how long a pending row of the small per-run writes (users, user
	// changes, license and usage counts, sync runs, connection events) waits for other
	// tenants' rows before its INSERT is sent: each table gets one INSERT per interval at
	// most instead of one per run (docs/performance.md, "Onboarding and memory"). Default
	// 50 ms.
	RowFlushInterval time.Duration
	// UserInsertGap is the least time between two INSERTs into users and into user_changes
	// that are not full (userChunk rows): under load, their rows wait for it so that these
	// tables get larger parts, which ClickHouse merges less often; a row of an idle writer
	// still waits RowFlushInterval only (docs/performance.md, "Tenth session"). Default 1 s.
	UserInsertGap time.Duration
	// InsertTimeout bounds one INSERT attempt. Default 2 minutes.
	InsertTimeout time.Duration
	// Compression of the native protocol's blocks: "lz4" (default) or "none". Compressing
	// costs CPU on both ends; it pays where the network is the bottleneck, not on a loopback
	// or a fast local network (docs/performance.md, "Storage and publishing").
	Compression string
	// CloseTimeout bounds how long Close keeps retrying pending audit rows while ClickHouse
	// is unreachable; the callers of rows still unwritten then get ErrClosed. Default 30 s.
	CloseTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Compression == "" {
		c.Compression = "lz4"
	}
	if c.Username == "" {
		c.Username = "default"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 8
	}
	if c.AuditBatchRows <= 0 {
		c.AuditBatchRows = 50_000
	}
	if c.AuditFlushInterval <= 0 {
		c.AuditFlushInterval = time.Second
	}
	if c.AuditBufferRows < c.AuditBatchRows {
		c.AuditBufferRows = 4 * c.AuditBatchRows
	}
	if c.AuditWorkers <= 0 {
		c.AuditWorkers = 2
	}
	if c.RowFlushInterval <= 0 {
		c.RowFlushInterval = 50 * time.Millisecond
	}
	if c.UserInsertGap <= 0 {
		c.UserInsertGap = time.Second
	}
	if c.InsertTimeout <= 0 {
		c.InsertTimeout = 2 * time.Minute
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	return c
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Store is a connection pool to ClickHouse plus the audit-event group-commit writer. It is
// safe for concurrent use.
type Store struct {
	conn  driver.Conn
	cfg   Config
	db    string // the quoted database name, used to qualify every table
	log   zerolog.Logger
	audit *groupWriter[AuditEventRow]
	// native holds the audit writer's ch-go connections (native.go).
	native *nativePool
	// tablePools are the connections of the other tables written with ch-go (nativecols.go).
	tablePools []*nativePool
	// The small writes of every run, group-committed across tenants (writers.go).
	users         *groupWriter[UserRow]
	userChanges   *groupWriter[UserChangeRow]
	licenseCounts *groupWriter[licenseCountsRow]
	usageCounts   *groupWriter[usageCountsRow]
	syncRuns      *groupWriter[SyncRunRow]
	daily         *groupWriter[dailyRow]
	connEvents    *groupWriter[ConnectionEventRow]
	// queries holds the dashboard queries by name, loaded once in Open.
	queries map[string]string
}

// Open connects to ClickHouse over the native protocol, pings it and creates the database
// when it is missing. It does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Addr) == 0 {
		return nil, errors.New("open clickhouse: no address")
	}
	if cfg.Compression != "lz4" && cfg.Compression != "none" {
		return nil, fmt.Errorf("open clickhouse: compression %q is neither lz4 nor none", cfg.Compression)
	}
	if !identRE.MatchString(cfg.Database) {
		return nil, fmt.Errorf("open clickhouse: invalid database name %q", cfg.Database)
	}
	if cfg.Cluster != "" && !clusterRE.MatchString(cfg.Cluster) {
		return nil, fmt.Errorf("open clickhouse: invalid cluster name %q", cfg.Cluster)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:        clickhouse.Native,
		Addr:            cfg.Addr,
		Auth:            clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		DialTimeout:     cfg.DialTimeout,
		MaxOpenConns:    cfg.MaxOpenConns,
		MaxIdleConns:    cfg.MaxOpenConns,
		ConnMaxLifetime: time.Hour,
		Compression:     compression(cfg.Compression),
		ClientInfo:      clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "greenhouse-collector", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", strings.Join(cfg.Addr, ","), err)
	}
	s := &Store{conn: conn, cfg: cfg, db: "`" + cfg.Database + "`", log: cfg.Logger}
	if err := s.loadQueries(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s: %w", strings.Join(cfg.Addr, ","), err)
	}
	if err := conn.Exec(ctx, s.createDatabaseSQL()); err != nil && exceptionCode(err) != codeDatabaseAlreadyExists {
		_ = conn.Close()
		return nil, fmt.Errorf("create database %s: %w", cfg.Database, err)
	}
	v, err := conn.ServerVersion()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse %s: server version: %w", strings.Join(cfg.Addr, ","), err)
	}
	s.startWriters(v.Revision)
	return s, nil
}

// compression is the driver's setting for Config.Compression.
func compression(method string) *clickhouse.Compression {
	if method == "none" {
		return &clickhouse.Compression{Method: clickhouse.CompressionNone}
	}
	return &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
}

// Ping checks that ClickHouse answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping clickhouse: %w", err)
	}
	return nil
}

// Close flushes the pending audit events (retrying for at most Config.CloseTimeout while
// ClickHouse is unreachable) and closes the connections.
func (s *Store) Close() error {
	s.closeWriters()
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("close clickhouse: %w", err)
	}
	return nil
}

// Database returns the name of the database holding the tables.
func (s *Store) Database() string { return s.cfg.Database }

// sql replaces the {db} placeholder of a statement with the quoted database name.
func (s *Store) sql(q string) string { return strings.ReplaceAll(q, "{db}", s.db) }

// ClickHouse error codes this package reacts to.
const (
	codeDuplicateColumn       = 15
	codeIllegalColumn         = 44
	codeTableAlreadyExists    = 57
	codeDatabaseAlreadyExists = 82
)

// exceptionCode returns the server error code of err, or 0 when err is not a server exception.
func exceptionCode(err error) int32 {
	code, _ := serverCode(err)
	return code
}

// serverCode returns the code of a server exception, as clickhouse-go or ch-go (the audit
// writer's connections, native.go) reports it; ok is false for any other error.
func serverCode(err error) (code int32, ok bool) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code, true
	}
	var nex *ch.Exception
	if errors.As(err, &nex) {
		return int32(nex.Code), true
	}
	return 0, false
}

// retryableCodes are server exceptions that say "try again later" rather than "this INSERT
// is wrong": timeouts, overload, too many parts, memory pressure, read-only replicas,
// network trouble between servers.
var retryableCodes = map[int32]bool{
	3: true, 159: true, 164: true, 202: true, 203: true, 209: true, 210: true, 236: true,
	241: true, 242: true, 252: true, 285: true, 319: true, 425: true, 999: true,
}

// final marks an error that must not be retried whatever its cause (retryable), as a read
// that failed after it delivered rows; it reads as the error it wraps.
type final struct{ error }

func (f final) Unwrap() error { return f.error }

// retryable reports whether a failed write may succeed when repeated: any error that is not
// a server exception (connection refused or reset, EOF, timeouts) and the server exceptions
// in retryableCodes.
func retryable(err error) bool {
	var f final
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &f) {
		return false
	}
	if code, ok := serverCode(err); ok {
		return retryableCodes[code]
	}
	return true
}

// unix returns t as Unix seconds rounded up, the form every time is bound in (see the
// package doc). Stored times are whole seconds, so for a stored x: x >= t ⇔ x >= unix(t) and
// x < t ⇔ x < unix(t); rounding up keeps half-open ranges exact for fractional bounds.
func unix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
