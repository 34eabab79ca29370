package storage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

// The audit events, the bulk of what the collector stores, are written over connections of
// their own with ch-go, the column library clickhouse-go itself is built on. Its columns are
// filled straight from the rows, presized, and kept between INSERTs, so a batch costs one copy
// of its strings and no garbage; through clickhouse-go's batch API every string was copied
// into a column growing by doubling and the columns were garbage after each INSERT (a CPU
// profile put half of the writer's cost in those columns: docs/performance.md, "Insert speed").

// auditCols are audit_events' columns in insertAuditSQL's order, for each row's strings.
type auditCols struct {
	tenant, id, typ, ttype, tid, ptype, pid, pname, pemail, pip, reqID, reqType, meta proto.ColStr
	at, ingested                                                                      proto.ColDateTime
}

// input names the columns as insertAuditSQL does.
func (c *auditCols) input() proto.Input {
	return proto.Input{
		{Name: "tenant_id", Data: &c.tenant}, {Name: "event_id", Data: &c.id},
		{Name: "event_time", Data: &c.at}, {Name: "event_type", Data: &c.typ},
		{Name: "target_type", Data: &c.ttype}, {Name: "target_id", Data: &c.tid},
		{Name: "performer_type", Data: &c.ptype}, {Name: "performer_id", Data: &c.pid},
		{Name: "performer_name", Data: &c.pname}, {Name: "performer_email", Data: &c.pemail},
		{Name: "performer_ip", Data: &c.pip}, {Name: "request_id", Data: &c.reqID},
		{Name: "request_type", Data: &c.reqType}, {Name: "meta", Data: &c.meta},
		{Name: "ingested_at", Data: &c.ingested},
	}
}

// fill replaces the columns' contents with the rows of chunks, growing each column once to
// its final size.
func (c *auditCols) fill(chunks [][]AuditEventRow, ingested time.Time) {
	field := []func(e *AuditEventRow) string{
		func(e *AuditEventRow) string { return e.TenantID }, func(e *AuditEventRow) string { return e.EventID },
		func(e *AuditEventRow) string { return e.EventType }, func(e *AuditEventRow) string { return e.TargetType },
		func(e *AuditEventRow) string { return e.TargetID }, func(e *AuditEventRow) string { return e.PerformerType },
		func(e *AuditEventRow) string { return e.PerformerID }, func(e *AuditEventRow) string { return e.PerformerName },
		func(e *AuditEventRow) string { return e.PerformerEmail }, func(e *AuditEventRow) string { return e.PerformerIP },
		func(e *AuditEventRow) string { return e.RequestID }, func(e *AuditEventRow) string { return e.RequestType },
		func(e *AuditEventRow) string { return e.Meta },
	}
	cols := []*proto.ColStr{&c.tenant, &c.id, &c.typ, &c.ttype, &c.tid, &c.ptype, &c.pid, &c.pname,
		&c.pemail, &c.pip, &c.reqID, &c.reqType, &c.meta}
	n := 0
	for _, rows := range chunks {
		n += len(rows)
	}
	for k, col := range cols {
		get, size := field[k], 0
		for _, rows := range chunks {
			for i := range rows {
				size += len(get(&rows[i]))
			}
		}
		col.Reset()
		col.Buf = slices.Grow(col.Buf, size)
		col.Pos = slices.Grow(col.Pos, n)
		for _, rows := range chunks {
			for i := range rows {
				col.Append(get(&rows[i]))
			}
		}
	}
	c.at.Reset()
	c.ingested.Reset()
	c.at.Data = slices.Grow(c.at.Data, n)
	c.ingested.Data = slices.Grow(c.ingested.Data, n)
	stamp := proto.ToDateTime(ingested)
	for _, rows := range chunks {
		for i := range rows {
			c.at.Append(rows[i].EventTime)
			c.ingested.Data = append(c.ingested.Data, stamp)
		}
	}
}

// nativeConn is one ch-go connection and the columns it sends; ch-go's clients are not safe
// for concurrent use, so each audit INSERT takes one from the pool.
type nativeConn struct {
	client *ch.Client
	cols   auditCols
}

// nativePool holds at most one nativeConn per audit worker. A connection that failed is
// closed and dialled again on its next use.
type nativePool struct {
	cfg Config
	// oldServer: the server's protocol revision is below 54420 (ClickHouse 18.16 speaks 54413),
	// where ch-go leaves out the client info the server then expects in every query; the
	// pool then announces itself as a client of revision 54031, before client info existed,
	// which such servers still accept (docs/schema.md, "Writers").
	oldServer bool
	free      chan *nativeConn
	mu        sync.Mutex
	closed    sync.Once
	next      int // the address to dial next: Config.Addr in turn, so a dead server is left behind
}

// Protocol revisions for oldServer: below clientInfoRevision ch-go cannot query a server; the
// pool then speaks legacyProtocolVersion.
const (
	clientInfoRevision    = 54420
	legacyProtocolVersion = 54031
)

func newNativePool(cfg Config, size int, serverRevision uint64) *nativePool {
	p := &nativePool{cfg: cfg, free: make(chan *nativeConn, size), oldServer: serverRevision < clientInfoRevision}
	for range size {
		p.free <- &nativeConn{}
	}
	return p
}

// dial connects to the next address of Config.Addr.
func (p *nativePool) dial(ctx context.Context) (*ch.Client, error) {
	p.mu.Lock()
	addr := p.cfg.Addr[p.next%len(p.cfg.Addr)]
	p.next++
	p.mu.Unlock()
	opts := ch.Options{
		Address:     addr,
		User:        p.cfg.Username,
		Password:    p.cfg.Password,
		ClientName:  "greenhouse-collector",
		DialTimeout: p.cfg.DialTimeout,
		// The server answers an INSERT once its part is written, which can take longer than
		// ch-go's default of 3 s per packet; the INSERT's context bounds the whole exchange.
		ReadTimeout: p.cfg.InsertTimeout,
	}
	if p.oldServer {
		opts.ProtocolVersion = legacyProtocolVersion
	}
	if p.cfg.Compression != "none" {
		opts.Compression = ch.CompressionLZ4
	}
	c, err := ch.Dial(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s: %w", addr, err)
	}
	return c, nil
}

// insert runs one INSERT of audit rows (the rows of chunks) with a pooled connection and its
// columns.
func (p *nativePool) insert(ctx context.Context, query string, chunks [][]AuditEventRow) error {
	return p.with(ctx, func(nc *nativeConn) error {
		nc.cols.fill(chunks, time.Now().UTC())
		return nc.client.Do(ctx, ch.Query{Body: query + " VALUES", Input: nc.cols.input()})
	})
}

// do runs one INSERT (query ends with VALUES) of input with a pooled connection.
func (p *nativePool) do(ctx context.Context, query string, input proto.Input) error {
	return p.with(ctx, func(nc *nativeConn) error {
		return nc.client.Do(ctx, ch.Query{Body: query, Input: input})
	})
}

// with calls fn with a pooled connection, dialled if needed; a connection fn failed on is
// closed.
func (p *nativePool) with(ctx context.Context, fn func(nc *nativeConn) error) error {
	var nc *nativeConn
	select {
	case nc = <-p.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.free <- nc }()
	if nc.client == nil || nc.client.IsClosed() {
		c, err := p.dial(ctx)
		if err != nil {
			return err
		}
		nc.client = c
	}
	if err := fn(nc); err != nil {
		_ = nc.client.Close()
		nc.client = nil
		return err
	}
	return nil
}

// close closes every pooled connection; called once the audit writer has stopped (Close may
// be called more than once).
func (p *nativePool) close() {
	p.closed.Do(func() {
		for range cap(p.free) {
			nc := <-p.free
			if nc.client != nil {
				_ = nc.client.Close()
			}
			p.free <- &nativeConn{}
		}
	})
}
