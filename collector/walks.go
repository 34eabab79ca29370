package collector

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seatwatch/greenhouse-collector/events"
)

// A walk of the users list (docs/api.md, "Cursors") is fixed at its first page: the ids of
// every user that matched the filters then, in the order of the sort then. The snapshot is
// kept in a KV bucket of its own for walkTTL, so that any replica can serve the next page;
// the cursor names it and the position in it, sealed so that a client can neither read nor
// forge either.
const (
	walkBucket = events.BucketWalks
	// walkTTL is how long a walk can be continued after its first page.
	walkTTL = time.Hour
	// walkChunk bounds one KV value of a snapshot: NATS's default max_payload is 1 MiB.
	walkChunk = 512 << 10
)

// errWalkExpired: the walk a cursor names is gone (older than walkTTL, or its store lost it).
var errWalkExpired = errors.New("walk expired")

// walk is one snapshot of the users list.
type walk struct {
	tenant string
	query  string // canonical filters and sort of the walk (usersQuery.key)
	asOf   time.Time
	ids    []int64
}

// walkStore keeps walks in the bucket <kv prefix>_walks, created on first use.
type walkStore struct {
	bus *events.Bus

	mu sync.Mutex
	kv jetstream.KeyValue
}

func newWalkStore(bus *events.Bus) *walkStore { return &walkStore{bus: bus} }

func (ws *walkStore) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.kv != nil {
		return ws.kv, nil
	}
	cfg := ws.bus.Config()
	kv, err := ws.bus.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.KVPrefix + "_" + walkBucket,
		Description: "Snapshots of users-list walks (GET /v1/tenants/{tenant_id}/users); each expires after an hour",
		TTL:         walkTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s_%s: %w", cfg.KVPrefix, walkBucket, err)
	}
	ws.kv = kv
	return kv, nil
}

// put stores w and returns its id.
func (ws *walkStore) put(ctx context.Context, w walk) (string, error) {
	kv, err := ws.bucket(ctx)
	if err != nil {
		return "", err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("walk id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	body := encodeWalk(w)
	n := (len(body) + walkChunk - 1) / walkChunk
	for i := n - 1; i >= 0; i-- { // chunk 0 last: a walk is complete once its head is there
		part := body[i*walkChunk : min((i+1)*walkChunk, len(body))]
		if i == 0 {
			part = append(binary.AppendUvarint(nil, uint64(n)), part...)
		}
		if _, err := kv.Put(ctx, id+"."+strconv.Itoa(i), part); err != nil {
			return "", fmt.Errorf("store walk: %w", err)
		}
	}
	return id, nil
}

// get reads the walk id; errWalkExpired when it is gone.
func (ws *walkStore) get(ctx context.Context, id string) (walk, error) {
	kv, err := ws.bucket(ctx)
	if err != nil {
		return walk{}, err
	}
	read := func(i int) ([]byte, error) {
		e, err := kv.Get(ctx, id+"."+strconv.Itoa(i))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, errWalkExpired
		}
		if err != nil {
			return nil, fmt.Errorf("read walk: %w", err)
		}
		return e.Value(), nil
	}
	head, err := read(0)
	if err != nil {
		return walk{}, err
	}
	n, k := binary.Uvarint(head)
	if k <= 0 || n == 0 || n > 1<<16 {
		return walk{}, errors.New("read walk: malformed head")
	}
	body := append([]byte{}, head[k:]...)
	for i := 1; i < int(n); i++ {
		part, err := read(i)
		if err != nil {
			return walk{}, err
		}
		body = append(body, part...)
	}
	return decodeWalk(body)
}

// encodeWalk: tenant and query (uvarint length and bytes), asOf (varint Unix seconds), the
// number of ids and the ids as zigzag varint differences from the previous one.
func encodeWalk(w walk) []byte {
	b := make([]byte, 0, 64+len(w.tenant)+len(w.query)+3*len(w.ids))
	for _, s := range []string{w.tenant, w.query} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, w.asOf.Unix())
	b = binary.AppendUvarint(b, uint64(len(w.ids)))
	prev := int64(0)
	for _, id := range w.ids {
		b = binary.AppendVarint(b, id-prev)
		prev = id
	}
	return b
}

func decodeWalk(b []byte) (walk, error) {
	bad := errors.New("read walk: malformed snapshot")
	var w walk
	for _, dst := range []*string{&w.tenant, &w.query} {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return walk{}, bad
		}
		*dst, b = string(b[k:k+int(n)]), b[k+int(n):]
	}
	at, k := binary.Varint(b)
	if k <= 0 {
		return walk{}, bad
	}
	w.asOf, b = time.Unix(at, 0).UTC(), b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return walk{}, bad
	}
	b = b[k:]
	w.ids = make([]int64, 0, n)
	prev := int64(0)
	for range n {
		d, k := binary.Varint(b)
		if k <= 0 {
			return walk{}, bad
		}
		prev += d
		w.ids = append(w.ids, prev)
		b = b[k:]
	}
	if len(b) != 0 {
		return walk{}, bad
	}
	return w, nil
}

// sealCursor seals a cursor's fields, bound to the route and tenant (aad): another tenant's
// or route's cursor does not open. The form is "key id.base64url(nonce and ciphertext)".
func (a *api) sealCursor(route, tenant string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sealed, err := a.sealer.Seal(string(plain), "cursor\x00"+route+"\x00"+tenant)
	if err != nil {
		return "", fmt.Errorf("seal cursor: %w", err)
	}
	return sealed.KeyID + "." + base64.RawURLEncoding.EncodeToString(append(sealed.Nonce, sealed.Ciphertext...)), nil
}

// openCursor opens a cursor of sealCursor into v (decoded strictly); false for anything the
// collector did not give for this route and tenant.
func (a *api) openCursor(route, tenant, raw string, v any) bool {
	i := strings.LastIndexByte(raw, '.')
	if i <= 0 || len(raw) > 1024 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil || len(b) < 12 {
		return false
	}
	plain, err := a.sealer.Open(events.Sealed{KeyID: raw[:i], Nonce: b[:12], Ciphertext: b[12:]}, "cursor\x00"+route+"\x00"+tenant)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(plain))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}
