package events

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	DefaultStream          = "SAAS"
	DefaultSubject         = "saas.>"
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultKVPrefix        = "saas"
	DefaultLeaseTTL        = 30 * time.Second
	DefaultMaxInFlight     = 512
	DefaultAckTimeout      = 10 * time.Second
)

// The KV buckets of the collector, by the name BucketKV takes; the bucket in JetStream is
// "{KVPrefix}_{name}".
const (
	BucketConnections = "connections" // tenant connections, client secret sealed
	BucketCheckpoints = "checkpoints" // per-tenant sync progress
	BucketAlerts      = "alerts"      // per-tenant alert state (last transition per user)
	BucketLeases      = "leases"      // shard ownership across replicas; entries expire after LeaseTTL
	BucketActions     = "actions"     // reclaim actions: each one's request and per-user outcomes
	// BucketWalks holds the read API's users-list walks (collector/walks.go); the collector
	// creates it on first use, its entries expiring after an hour; NewBus does not.
	BucketWalks = "walks"
)

// LeaseHistory is how many revisions of each lease the leases bucket keeps (within its TTL):
// a lease is renewed every third of the TTL, so it holds every revision younger than the TTL.
const LeaseHistory = 8

// Buckets lists every bucket name NewBus creates.
func Buckets() []string {
	return []string{BucketConnections, BucketCheckpoints, BucketAlerts, BucketLeases, BucketActions}
}

// Config configures the stream, the KV buckets and the publisher. The zero value of each field
// means its default.
type Config struct {
	Stream          string        // stream name; default "SAAS"
	Subjects        []string      // default ["saas.>"]
	Replicas        int           // stream and bucket replicas; default 1
	MaxAge          time.Duration // 0 = unlimited
	MaxBytes        int64         // 0 = unlimited
	DuplicateWindow time.Duration // default 2m (docs/events.md, "Deduplication"); capped at MaxAge when MaxAge is set
	KVPrefix        string        // default "saas"; buckets <prefix>_connections, _checkpoints, _alerts, _leases
	LeaseTTL        time.Duration // default 30s: the leases bucket's TTL (entries vanish unless refreshed)
	MaxInFlight     int           // bound on un-acked async publishes across all Publish calls; default 512
	AckTimeout      time.Duration // how long one publish waits for its ack before it is retried; default 10s
	Logger          zerolog.Logger
}

var (
	streamNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	kvPrefixRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)
)

func (c Config) withDefaults() (Config, error) {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{DefaultSubject}
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
		c.DuplicateWindow = c.MaxAge
	}
	if c.KVPrefix == "" {
		c.KVPrefix = DefaultKVPrefix
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	var errs []error
	if !streamNameRe.MatchString(c.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q must be 1 to 32 characters of [A-Za-z0-9_-]", c.Stream))
	}
	if !kvPrefixRe.MatchString(c.KVPrefix) {
		errs = append(errs, fmt.Errorf("kv prefix %q must be 1 to 48 characters of [A-Za-z0-9_-]", c.KVPrefix))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d must be 1 to 5", c.Replicas))
	}
	if c.MaxAge < 0 || c.MaxBytes < 0 || c.DuplicateWindow < 0 || c.LeaseTTL < 0 || c.AckTimeout < 0 {
		errs = append(errs, errors.New("durations and sizes must not be negative"))
	}
	if c.LeaseTTL > 0 && c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease ttl %s must be at least 1s", c.LeaseTTL))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d must be positive", c.MaxInFlight))
	}
	return c, errors.Join(errs...)
}

// StreamConfig returns the JetStream configuration NewBus creates or updates the stream with.
func (c Config) StreamConfig() (jetstream.StreamConfig, error) {
	c, err := c.withDefaults()
	if err != nil {
		return jetstream.StreamConfig{}, fmt.Errorf("stream config: %w", err)
	}
	return c.streamConfig(), nil
}

func (c Config) streamConfig() jetstream.StreamConfig {
	maxBytes := c.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:              c.Stream,
		Description:       "Greenhouse collector events: CloudEvents 1.0 structured JSON, deduplicated by Nats-Msg-Id",
		Subjects:          c.Subjects,
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          maxBytes,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.MaxAge,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        -1,
		Storage:           jetstream.FileStorage,
		Replicas:          c.Replicas,
		Duplicates:        c.DuplicateWindow,
	}
}

func (c Config) bucketConfig(name string) jetstream.KeyValueConfig {
	cfg := jetstream.KeyValueConfig{
		Bucket:   c.KVPrefix + "_" + name,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: c.Replicas,
	}
	switch name {
	case BucketConnections:
		// History 1: a replaced or erased connection leaves no older sealed secret behind.
		cfg.Description = "Greenhouse connections by tenant; client secrets sealed with AES-256-GCM"
	case BucketCheckpoints:
		cfg.Description = "Greenhouse sync checkpoints by tenant"
	case BucketAlerts:
		cfg.Description = "Greenhouse license alert state by tenant"
	case BucketActions:
		cfg.Description = "Greenhouse reclaim actions by tenant and action id: request and per-user outcomes"
	case BucketLeases:
		cfg.Description = "Collector shard leases; an entry expires unless refreshed within the TTL"
		cfg.TTL = c.LeaseTTL
		// A shard's recent holders stay readable (KV History) for operators and for the
		// cluster test's lease check (docs/reliability.md); the TTL bounds what is kept.
		cfg.History = LeaseHistory
	}
	return cfg
}

// Bus is the collector's JetStream side: the stream it publishes to and its KV buckets. It is
// safe for concurrent use.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	log     zerolog.Logger
	buckets map[string]jetstream.KeyValue

	sem   chan struct{} // one token per un-acked async publish
	stats publishStats
}

type publishStats struct {
	acked, duplicates, retried, failed atomic.Uint64
}

// NewBus creates or updates the stream (file storage, deduplication window, limits) and the KV
// buckets (file storage, history 1, the leases bucket with LeaseTTL and LeaseHistory) and returns a Bus over
// them. It returns an error for an invalid configuration or when JetStream refuses a change
// (for example a storage type change of an existing stream). nc stays owned by the caller.
func NewBus(ctx context.Context, nc *nats.Conn, cfg Config) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new bus: %w", err)
	}
	js, err := jetstream.New(nc,
		// The semaphore in Publish is the real bound; the library's cap only has to never bite
		// first (abandoned futures still count there until they resolve).
		jetstream.WithPublishAsyncMaxPending(2*cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("new bus: jetstream: %w", err)
	}
	b := &Bus{
		nc:      nc,
		js:      js,
		cfg:     cfg,
		log:     cfg.Logger,
		buckets: make(map[string]jetstream.KeyValue, 4),
		sem:     make(chan struct{}, cfg.MaxInFlight),
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg.streamConfig()); err != nil {
		return nil, fmt.Errorf("new bus: create or update stream %s: %w", cfg.Stream, err)
	}
	for _, name := range Buckets() {
		bc := cfg.bucketConfig(name)
		kv, err := js.CreateOrUpdateKeyValue(ctx, bc)
		if err != nil {
			return nil, fmt.Errorf("new bus: create or update bucket %s: %w", bc.Bucket, err)
		}
		b.buckets[name] = kv
	}
	b.log.Info().Str("stream", cfg.Stream).Strs("subjects", cfg.Subjects).
		Dur("duplicate_window", cfg.DuplicateWindow).Str("kv_prefix", cfg.KVPrefix).
		Msg("jetstream stream and buckets ready")
	return b, nil
}

// Config returns the effective configuration, defaults applied.
func (b *Bus) Config() Config { return b.cfg }

// JetStream returns the JetStream handle the bus uses, for consumers and administration.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// StreamInfo returns the stream's current configuration and state.
func (b *Bus) StreamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream info %s: %w", b.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream info %s: %w", b.cfg.Stream, err)
	}
	return info, nil
}

// PublishStats are cumulative publisher counters since NewBus.
type PublishStats struct {
	Acked      uint64 // messages acknowledged (including duplicates)
	Duplicates uint64 // acknowledgements the server flagged as duplicates (already stored)
	Retried    uint64 // publish attempts repeated after a failure or timeout
	Failed     uint64 // messages a Publish call gave up on
}

// Stats returns the publisher counters.
func (b *Bus) Stats() PublishStats {
	return PublishStats{
		Acked:      b.stats.acked.Load(),
		Duplicates: b.stats.duplicates.Load(),
		Retried:    b.stats.retried.Load(),
		Failed:     b.stats.failed.Load(),
	}
}
