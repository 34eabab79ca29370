package collector

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Scope is what an API token may do (docs/api.md, "Tokens and scopes").
type Scope string

// The scopes of API tokens.
const (
	ScopeRead    Scope = "read"    // the read API and /metrics
	ScopeConnect Scope = "connect" // the connection routes
	ScopeAct     Scope = "act"     // reclaim actions: POST …/actions
)

var allScopes = []Scope{ScopeRead, ScopeConnect, ScopeAct}

// legacyTokenName is the name of api-token in the token set: it has every scope.
const legacyTokenName = "api-token"

// tokensPollInterval is how often the tokens file's modification time and size are checked.
const tokensPollInterval = 2 * time.Second

// apiToken is one named token: only the SHA-256 of its value is kept.
type apiToken struct {
	name   string
	digest [sha256.Size]byte
	scopes map[Scope]bool
}

func (t apiToken) scopeList() string {
	var s []string
	for _, sc := range allScopes {
		if t.scopes[sc] {
			s = append(s, string(sc))
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// tokenSet holds the API tokens: api-token (every scope) and those of api-tokens-file, which
// is re-read when it changes (watch) or on Reload (SIGHUP), without a restart.
type tokenSet struct {
	legacy string // api-token; "" for none
	file   string // api-tokens-file; "" for none
	log    zerolog.Logger

	mu     sync.RWMutex
	tokens []apiToken
	stamp  fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// newTokenSet loads the tokens of cfg. It fails when the tokens file cannot be read or is
// malformed.
func newTokenSet(cfg Config, log zerolog.Logger) (*tokenSet, error) {
	t := &tokenSet{legacy: cfg.APIToken, file: cfg.APITokensFile, log: log}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload re-reads the tokens file. On an error the tokens in force stay as they were.
func (t *tokenSet) Reload() error {
	var tokens []apiToken
	if t.legacy != "" {
		tokens = append(tokens, apiToken{name: legacyTokenName, digest: sha256.Sum256([]byte(t.legacy)),
			scopes: map[Scope]bool{ScopeRead: true, ScopeConnect: true, ScopeAct: true}})
	}
	var stamp fileStamp
	if t.file != "" {
		fi, err := os.Stat(t.file)
		if err != nil {
			return fmt.Errorf("api-tokens-file: %w", err)
		}
		stamp = fileStamp{mod: fi.ModTime(), size: fi.Size()}
		body, err := os.ReadFile(t.file)
		if err != nil {
			return fmt.Errorf("api-tokens-file: %w", err)
		}
		fromFile, err := parseTokens(body)
		if err != nil {
			return fmt.Errorf("api-tokens-file %s: %w", t.file, err)
		}
		for _, ft := range fromFile {
			if ft.name == legacyTokenName && t.legacy != "" {
				return fmt.Errorf("api-tokens-file %s: the name %q is api-token's", t.file, legacyTokenName)
			}
		}
		tokens = append(tokens, fromFile...)
	}
	t.mu.Lock()
	t.tokens, t.stamp = tokens, stamp
	t.mu.Unlock()
	return nil
}

// changed reports whether the tokens file's modification time or size differ from those of
// the last load.
func (t *tokenSet) changed() bool {
	fi, err := os.Stat(t.file)
	if err != nil {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return !fi.ModTime().Equal(t.stamp.mod) || fi.Size() != t.stamp.size
}

// watch reloads the tokens file whenever it changes, until ctx ends.
func (t *tokenSet) watch(ctx context.Context) {
	if t.file == "" {
		return
	}
	tick := time.NewTicker(tokensPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !t.changed() {
				continue
			}
			if err := t.Reload(); err != nil {
				t.log.Error().Err(err).Msg("api tokens not reloaded; the previous tokens stay in force")
				continue
			}
			t.log.Info().Int("tokens", t.count()).Msg("api tokens reloaded")
		}
	}
}

func (t *tokenSet) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.tokens)
}

// lookup finds the token whose value is presented. It compares the presented value's SHA-256
// with every token's in constant time, without stopping at a match, so the time taken tells
// neither which token matched nor how much of one did.
func (t *tokenSet) lookup(presented string) (apiToken, bool) {
	if presented == "" {
		return apiToken{}, false
	}
	d := sha256.Sum256([]byte(presented))
	t.mu.RLock()
	defer t.mu.RUnlock()
	found := -1
	for i := range t.tokens {
		if subtle.ConstantTimeCompare(d[:], t.tokens[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return apiToken{}, false
	}
	return t.tokens[found], true
}

var tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// parseTokens reads a tokens file: one token a line, "name scopes token", fields separated by
// white space; scopes comma-separated from read, connect, act; token the value itself (16
// characters at least) or "sha256:" and the hex SHA-256 of the value. Blank lines and lines
// starting with # are skipped. Names are unique, and so are values.
func parseTokens(body []byte) ([]apiToken, error) {
	var (
		out   []apiToken
		errs  []error
		names = map[string]bool{}
		seen  = map[[sha256.Size]byte]bool{}
	)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			errs = append(errs, fmt.Errorf("line %d: want \"name scopes token\"", n))
			continue
		}
		tok := apiToken{name: f[0], scopes: map[Scope]bool{}}
		if !tokenNameRe.MatchString(tok.name) || names[tok.name] {
			errs = append(errs, fmt.Errorf("line %d: the name must be 1 to 64 characters of [A-Za-z0-9_.-], used once", n))
			continue
		}
		names[tok.name] = true
		for _, s := range strings.Split(f[1], ",") {
			switch Scope(s) {
			case ScopeRead, ScopeConnect, ScopeAct:
				tok.scopes[Scope(s)] = true
			default:
				errs = append(errs, fmt.Errorf("line %d: unknown scope %q (read, connect, act)", n, s))
			}
		}
		if hexDigest, ok := strings.CutPrefix(f[2], "sha256:"); ok {
			b, err := hex.DecodeString(hexDigest)
			if err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("line %d: sha256: must be followed by 64 hex digits", n))
				continue
			}
			copy(tok.digest[:], b)
		} else {
			if len(f[2]) < 16 {
				errs = append(errs, fmt.Errorf("line %d: token %q is shorter than 16 characters", n, tok.name))
				continue
			}
			tok.digest = sha256.Sum256([]byte(f[2]))
		}
		if seen[tok.digest] {
			errs = append(errs, fmt.Errorf("line %d: token %q has the value of an earlier one", n, tok.name))
			continue
		}
		seen[tok.digest] = true
		out = append(out, tok)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, errors.Join(errs...)
}

// ReloadTokens re-reads the API tokens file (the collector calls it on SIGHUP). On an error
// the tokens in force stay as they were.
func (s *Service) ReloadTokens() error {
	return s.api.tokenSet().Reload()
}
