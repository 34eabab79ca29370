package collector

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the collector's configuration. Every field has a flag and an environment variable
// (flag -http-addr, variable COLLECTOR_HTTP_ADDR); the environment overrides the default and a
// flag overrides the environment.
type Config struct {
	HTTPAddr    string // address of the HTTP API
	APIToken    string // bearer token of the HTTP API with every scope (secret)
	ReplicaID   string // this replica's name in leases (default: host name and pid)
	LogLevel    string // zerolog level
	Concurrency int    // tenants synced at once by this replica

	// APITokensFile names named tokens with scopes ("name scopes token" lines), re-read when
	// it changes and on SIGHUP.
	APITokensFile string

	NATSURL   string // external NATS (comma-separated URLs); empty: run an embedded server
	NATSCreds string // path to a NATS credentials file for the external NATS
	NATSCA    string // CA certificate file verifying the external NATS servers
	NATSCert  string // client certificate file for the external NATS (TLS client auth)
	NATSKey   string // the client certificate's key file
	DataDir   string // data directory of the embedded NATS server
	NATSPort  int    // client port of the embedded NATS server (-1: random), with NATSListen
	// NATSListen opens the embedded server's client port; without it the server takes the
	// replica's own in-process connection only.
	NATSListen bool
	NATSToken  string // token network clients of the embedded server present (secret); empty: random

	ClickHouseAddr     string // comma-separated host:port (native protocol)
	ClickHouseDatabase string
	ClickHouseCluster  string // cluster the schema is created on (ON CLUSTER, Replicated engines); empty: none
	ClickHouseUser     string
	ClickHousePassword string // secret

	SecretKeys string // "id:base64key[,id:base64key…]", first is primary (secret)

	DefaultInactiveAfterDays int
	DefaultUsersInterval     time.Duration
	DefaultAuditInterval     time.Duration
	CheckTimeout             time.Duration

	AllowEndpointOverride  bool   // allow per-tenant Greenhouse base URLs
	AllowInsecureEndpoints bool   // allow plain-http overrides (testing only)
	AllowedEndpointHosts   string // domains (with their subdomains) and IPs overrides may name; "*": any
	// UnsafeAllowLoopbackEndpointsForTests lets overrides reach loopback addresses (the
	// simulator of tests and the demo); never in production.
	UnsafeAllowLoopbackEndpointsForTests bool

	MaxTenants int // connected tenants at most (0: unlimited)
	// UsersCacheMiB bounds the users cache (userscache.go): tenants' users held between users
	// syncs instead of read back from ClickHouse. 0 turns it off.
	UsersCacheMiB     int
	ConnectsPerMinute int // connect requests (PUT) per minute at most (0: unlimited)

	Shards          int           // tenant shards leased across replicas
	LeaseTTL        time.Duration // a dead replica's shards move after at most this long
	StreamReplicas  int           // replicas of the stream and KV buckets (3 on a NATS cluster)
	DuplicateWindow time.Duration // JetStream dedup window
	StreamMaxAge    time.Duration // 0: keep events forever

	MetricsAddr string // address of a listener serving /metrics without a token; empty: none
	DebugAddr   string // address of the pprof listener; empty: none

	// GreenhouseWindows overrides the lengths of Greenhouse's rate-limit windows that the
	// connector assumes where an answer names no X-RateLimit-Reset ("harvest=3s,audit=1s,
	// token=6s,audit-paged=3s"): only for a simulator whose windows are scaled down.
	GreenhouseWindows string

	// ActionChunk is how many users of a reclaim action one run decides and sends (the
	// action's share of the tenant's Harvest budget, with ActionEvery); ActionEvery is the
	// least time between two of an action's runs (docs/api.md, "Actions").
	ActionChunk int
	ActionEvery time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		HTTPAddr:                 ":8080",
		ReplicaID:                fmt.Sprintf("%s-%d", host, os.Getpid()),
		LogLevel:                 "info",
		Concurrency:              16,
		DataDir:                  "./data",
		NATSPort:                 4222,
		ClickHouseAddr:           "127.0.0.1:9000",
		ClickHouseDatabase:       "saas",
		ClickHouseUser:           "default",
		DefaultInactiveAfterDays: 30,
		DefaultUsersInterval:     time.Hour,
		DefaultAuditInterval:     5 * time.Minute,
		CheckTimeout:             30 * time.Second,
		AllowedEndpointHosts:     "greenhouse.io",
		Shards:                   64,
		LeaseTTL:                 30 * time.Second,
		StreamReplicas:           1,
		DuplicateWindow:          2 * time.Minute, // events.DefaultDuplicateWindow (docs/events.md, "Deduplication")
		ActionChunk:              25,
		ActionEvery:              30 * time.Second,
		UsersCacheMiB:            256,
	}
}

// configField describes one setting for flags, environment and documentation.
type configField struct {
	name   string // flag name; the variable is COLLECTOR_ + upper-case with '_'
	usage  string
	secret bool
	ptr    any
}

func (c *Config) fields() []configField {
	return []configField{
		{"http-addr", "address of the HTTP API", false, &c.HTTPAddr},
		{"api-token", "bearer token with every scope (read, connect, act), accepted by every API route but /healthz and /readyz (required unless api-tokens-file)", true, &c.APIToken},
		{"api-tokens-file", "file of named API tokens, one a line: name scopes token (scopes from read, connect, act, comma-separated; token the value or sha256:hex); re-read when it changes and on SIGHUP", false, &c.APITokensFile},
		{"replica-id", "name of this replica in shard leases", false, &c.ReplicaID},
		{"log-level", "log level: debug, info, warn, error", false, &c.LogLevel},
		{"concurrency", "tenants synced at once by this replica", false, &c.Concurrency},
		{"nats-url", "external NATS URLs, comma-separated; empty runs an embedded NATS server", false, &c.NATSURL},
		{"nats-creds", "NATS credentials file for the external NATS", false, &c.NATSCreds},
		{"nats-ca", "CA certificate file verifying the external NATS servers' TLS certificates (tls:// URLs; empty: the system's roots)", false, &c.NATSCA},
		{"nats-cert", "client certificate file for an external NATS that requires TLS client authentication", false, &c.NATSCert},
		{"nats-key", "key file of nats-cert", false, &c.NATSKey},
		{"data-dir", "data directory of the embedded NATS server", false, &c.DataDir},
		{"nats-listen", "open the embedded NATS server's client port (127.0.0.1:nats-port) to other processes, which must present nats-token; false: in-process only", false, &c.NATSListen},
		{"nats-port", "client port of the embedded NATS server with nats-listen (-1: random)", false, &c.NATSPort},
		{"nats-token", "token clients of the listening embedded NATS server must present; empty: a random one known to this process only", true, &c.NATSToken},
		{"clickhouse-addr", "ClickHouse native addresses host:port, comma-separated", false, &c.ClickHouseAddr},
		{"clickhouse-database", "ClickHouse database", false, &c.ClickHouseDatabase},
		{"clickhouse-cluster", "ClickHouse cluster (remote_servers) to create the schema on, ON CLUSTER with ReplicatedReplacingMergeTree tables; empty: one server or ClickHouse Cloud (docs/schema.md)", false, &c.ClickHouseCluster},
		{"clickhouse-user", "ClickHouse user", false, &c.ClickHouseUser},
		{"clickhouse-password", "ClickHouse password", true, &c.ClickHousePassword},
		{"secret-keys", "keys sealing client secrets: id:base64(32 bytes)[,id:key…], first is primary (required)", true, &c.SecretKeys},
		{"inactive-after-days", "default days without activity before a license is inactive", false, &c.DefaultInactiveAfterDays},
		{"users-interval", "default interval of users syncs", false, &c.DefaultUsersInterval},
		{"audit-interval", "default interval of Audit Log polls", false, &c.DefaultAuditInterval},
		{"check-timeout", "bound on the connect-flow checks", false, &c.CheckTimeout},
		{"allow-endpoint-override", "accept per-tenant Greenhouse base URLs", false, &c.AllowEndpointOverride},
		{"allow-insecure-endpoints", "accept plain-http base URLs (testing only)", false, &c.AllowInsecureEndpoints},
		{"allowed-endpoint-hosts", "hosts base URL overrides may name, comma-separated: a domain allows its subdomains, an IP address itself, * any host", false, &c.AllowedEndpointHosts},
		{"unsafe-allow-loopback-endpoints-for-tests", "let base URL overrides reach loopback addresses (the simulator of tests and the demo); never in production", false, &c.UnsafeAllowLoopbackEndpointsForTests},
		{"max-tenants", "connected tenants at most; a connect beyond it is refused (0: unlimited)", false, &c.MaxTenants},
		{"users-cache-mib", "memory (MiB) for the users of tenants synced more often than every 10 minutes, held between their users syncs instead of read back from ClickHouse (0: off)", false, &c.UsersCacheMiB},
		{"connects-per-minute", "connect requests (PUT) accepted per minute (0: unlimited)", false, &c.ConnectsPerMinute},
		{"shards", "tenant shards leased across replicas", false, &c.Shards},
		{"lease-ttl", "lease lifetime: a dead replica's shards move within it", false, &c.LeaseTTL},
		{"stream-replicas", "replicas of the JetStream stream and KV buckets (use 3 on a 3-node NATS cluster)", false, &c.StreamReplicas},
		{"duplicate-window", "JetStream deduplication window", false, &c.DuplicateWindow},
		{"stream-max-age", "JetStream stream retention (0: unlimited)", false, &c.StreamMaxAge},
		{"metrics-addr", "address of a listener serving /metrics without a token (keep it private); empty: none, /metrics on the API needs the token", false, &c.MetricsAddr},
		{"debug-addr", "address of a Go profiling listener (/debug/pprof/, no token: keep it private); empty: none", false, &c.DebugAddr},
		{"action-chunk", "users of a reclaim action decided and sent per run (1..50): with action-every, the action's share of the tenant's Harvest budget", false, &c.ActionChunk},
		{"action-every", "least time between two runs of one reclaim action; the tenant's due syncs run between them", false, &c.ActionEvery},
		{"greenhouse-windows", "rate-limit window lengths assumed where Greenhouse names no reset, e.g. harvest=3s,audit=1s,token=6s,audit-paged=3s: only for a scaled-down simulator; empty: Greenhouse's documented 30s, 10s, 60s and 30s", false, &c.GreenhouseWindows},
	}
}

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "COLLECTOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// LoadConfig reads the configuration from the environment (getenv) and the command-line
// arguments, and validates all of it at once.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	var errs []error
	for _, f := range c.fields() {
		env := getenv(EnvName(f.name))
		usage := fmt.Sprintf("%s (env %s)", f.usage, EnvName(f.name))
		switch p := f.ptr.(type) {
		case *string:
			if env != "" {
				*p = env
			}
			fs.StringVar(p, f.name, *p, usage)
		case *int:
			errs = fromEnv(errs, f.name, env, p, strconv.Atoi, "an integer")
			fs.IntVar(p, f.name, *p, usage)
		case *bool:
			errs = fromEnv(errs, f.name, env, p, strconv.ParseBool, "a boolean")
			fs.BoolVar(p, f.name, *p, usage)
		case *time.Duration:
			errs = fromEnv(errs, f.name, env, p, time.ParseDuration, "a duration (e.g. 5m, 1h)")
			fs.DurationVar(p, f.name, *p, usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return c, err
	}
	return c, nil
}

// Validate checks every setting and returns all problems at once.
func (c Config) Validate() error {
	var p problems
	p.add(c.HTTPAddr == "", errors.New("http-addr is empty"))
	p.add(c.APIToken == "" && c.APITokensFile == "", errors.New("api-token or api-tokens-file must be set"))
	p.add(c.APIToken != "" && len(c.APIToken) < 16, errors.New("api-token must be at least 16 characters long"))
	p = append(p, tokensFileProblem(c.APITokensFile)...)
	p.add(c.ReplicaID == "", errors.New("replica-id is empty"))
	p.add(c.Concurrency < 1 || c.Concurrency > 1024, fmt.Errorf("concurrency %d is outside 1..1024", c.Concurrency))
	p.add(c.NATSURL == "" && c.DataDir == "", errors.New("data-dir is required for the embedded NATS server"))
	p.add(c.ClickHouseAddr == "", errors.New("clickhouse-addr is empty"))
	p.add(c.ClickHouseDatabase == "" || strings.ContainsAny(c.ClickHouseDatabase, " `\"'.;"), fmt.Errorf("clickhouse-database %q is not a plain identifier", c.ClickHouseDatabase))
	p.add(c.SecretKeys == "", errors.New("secret-keys must be set: id:base64(32 random bytes), e.g. k1:$(head -c32 /dev/urandom | base64)"))
	p.add(c.DefaultInactiveAfterDays < 1 || c.DefaultInactiveAfterDays > 365, fmt.Errorf("inactive-after-days %d is outside 1..365", c.DefaultInactiveAfterDays))
	p.add(c.DefaultUsersInterval < time.Minute, fmt.Errorf("users-interval %s is shorter than 1m", c.DefaultUsersInterval))
	p.add(c.DefaultAuditInterval < 10*time.Second, fmt.Errorf("audit-interval %s is shorter than 10s", c.DefaultAuditInterval))
	p.add(c.CheckTimeout < time.Second || c.CheckTimeout > 2*time.Minute, fmt.Errorf("check-timeout %s is outside 1s..2m", c.CheckTimeout))
	p.add(c.AllowInsecureEndpoints && !c.AllowEndpointOverride, errors.New("allow-insecure-endpoints needs allow-endpoint-override"))
	p.add(c.UnsafeAllowLoopbackEndpointsForTests && !c.AllowEndpointOverride, errors.New("unsafe-allow-loopback-endpoints-for-tests needs allow-endpoint-override"))
	if _, err := parseAllowedHosts(c.AllowedEndpointHosts); err != nil {
		p = append(p, err)
	}
	p.add(c.NATSURL != "" && (c.NATSListen || c.NATSToken != ""), errors.New("nats-listen and nats-token apply to the embedded NATS server, not to nats-url"))
	p.add(c.NATSToken != "" && !c.NATSListen, errors.New("nats-token needs nats-listen"))
	p.add(c.NATSURL == "" && (c.NATSCreds != "" || c.NATSCA != "" || c.NATSCert != "" || c.NATSKey != ""), errors.New("nats-creds, nats-ca, nats-cert and nats-key apply to an external NATS (nats-url)"))
	p.add((c.NATSCert == "") != (c.NATSKey == ""), errors.New("nats-cert and nats-key go together"))
	p.add(c.MaxTenants < 0, fmt.Errorf("max-tenants %d is negative", c.MaxTenants))
	p.add(c.UsersCacheMiB < 0 || c.UsersCacheMiB > 1<<20, fmt.Errorf("users-cache-mib %d is outside 0..1048576", c.UsersCacheMiB))
	p.add(c.ConnectsPerMinute < 0, fmt.Errorf("connects-per-minute %d is negative", c.ConnectsPerMinute))
	p.add(c.ActionChunk < 1 || c.ActionChunk > 50, fmt.Errorf("action-chunk %d is outside 1..50", c.ActionChunk))
	p.add(c.ActionEvery < 0 || c.ActionEvery > 10*time.Minute, fmt.Errorf("action-every %s is outside 0..10m", c.ActionEvery))
	p.add(c.Shards < 1 || c.Shards > 4096, fmt.Errorf("shards %d is outside 1..4096", c.Shards))
	p.add(c.LeaseTTL < time.Second, fmt.Errorf("lease-ttl %s is shorter than 1s", c.LeaseTTL))
	p.add(c.StreamReplicas < 1 || c.StreamReplicas > 5, fmt.Errorf("stream-replicas %d is outside 1..5", c.StreamReplicas))
	p.add(c.DuplicateWindow < time.Minute, fmt.Errorf("duplicate-window %s is shorter than 1m", c.DuplicateWindow))
	if _, err := parseWindows(c.GreenhouseWindows); err != nil {
		p = append(p, err)
	}
	return errors.Join(p...)
}

// problems collects a configuration's problems.
type problems []error

// add adds err when bad.
func (p *problems) add(bad bool, err error) {
	if bad {
		*p = append(*p, err)
	}
}

// fromEnv sets *p from the environment variable of the setting name when env (its value) is
// set, adding an error saying it is not kind when parse refuses it.
func fromEnv[T any](errs []error, name, env string, p *T, parse func(string) (T, error), kind string) []error {
	if env == "" {
		return errs
	}
	v, err := parse(env)
	if err != nil {
		return append(errs, fmt.Errorf("%s: %q is not %s", EnvName(name), env, kind))
	}
	*p = v
	return errs
}

// Masked returns the effective configuration as name=value pairs with secrets masked, for the
// start-up log line.
func (c Config) Masked() map[string]string {
	out := map[string]string{}
	for _, f := range c.fields() {
		v := fmt.Sprint(derefAny(f.ptr))
		if f.secret && v != "" {
			v = "***"
		}
		if f.ptr == &c.NATSURL {
			v = maskURLPasswords(v)
		}
		out[f.name] = v
	}
	return out
}

func derefAny(p any) any {
	switch v := p.(type) {
	case *string:
		return *v
	case *int:
		return *v
	case *bool:
		return *v
	case *time.Duration:
		return *v
	}
	return nil
}

// ConfigDoc returns a markdown table of every setting, its variable, default and meaning; the
// README's table is kept equal to it by a test.
func ConfigDoc() string {
	c := DefaultConfig()
	c.ReplicaID = "host name and pid"
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
	for _, f := range c.fields() {
		def := fmt.Sprint(derefAny(f.ptr))
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `-%s` | `%s` | `%s` | %s |\n", f.name, EnvName(f.name), def, f.usage)
	}
	return b.String()
}

// rateWindows are the window lengths of greenhouse-windows; zero keeps the documented one.
type rateWindows struct{ Harvest, Audit, Token, AuditPaged time.Duration }

// parseWindows reads greenhouse-windows: comma-separated name=duration pairs, each name at
// most once, each duration between 10ms and 1h.
func parseWindows(v string) (rateWindows, error) {
	var w rateWindows
	if strings.TrimSpace(v) == "" {
		return w, nil
	}
	dst := map[string]*time.Duration{"harvest": &w.Harvest, "audit": &w.Audit, "token": &w.Token, "audit-paged": &w.AuditPaged}
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		p := dst[name]
		if !ok || p == nil || seen[name] {
			return w, fmt.Errorf("greenhouse-windows: %q is not one of harvest=, audit=, token=, audit-paged= (each once)", part)
		}
		seen[name] = true
		d, err := time.ParseDuration(val)
		if err != nil || d < 10*time.Millisecond || d > time.Hour {
			return w, fmt.Errorf("greenhouse-windows: %s=%q is not a duration between 10ms and 1h", name, val)
		}
		*p = d
	}
	return w, nil
}

// maskURLPasswords masks the user information (user:password@ or token@) of each of a
// comma-separated list of URLs.
func maskURLPasswords(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("***")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// tokensFileProblem is what is wrong with api-tokens-file, if set: unreadable or not parsed.
func tokensFileProblem(path string) []error {
	if path == "" {
		return nil
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("api-tokens-file: %w", err)}
	}
	if _, err := parseTokens(body); err != nil {
		return []error{fmt.Errorf("api-tokens-file %s: %w", path, err)}
	}
	return nil
}
