// Command clustertest is the lease side of deploy/local/cluster-test.sh, which runs three
// collector replicas on a 3-node JetStream cluster while it kills and pauses nodes and
// replicas (docs/reliability.md, "A JetStream cluster under failure"). cmd/crashtest serves
// the simulator, runs the replicas and compares the data with the truth; this command
// follows and judges the shard leases. Modes:
//
//	clustertest -record -nats-url URLS -out FILE
//	    follows the leases bucket's stream from its first revision until SIGTERM, one JSON
//	    line per revision (sequence, key, operation, holder, server time); at the end it adds
//	    what each key's KV History still holds and it had not seen.
//	clustertest -leader -nats-url URLS [-stream NAME]
//	    prints the server name of the stream's leader (default SAAS).
//	clustertest -check -leases FILE -runs FILE -faults FILE -lease-ttl D
//	    [-users-interval D -audit-interval D]
//	    checks that every shard (and so every tenant) had at most one holder at a time, that
//	    no run went on after its replica's lease ended and no two replicas ran a tenant at
//	    once, and that no routine run (the runs file, replays included) was later than the
//	    lease TTL beyond its interval; reports the lease handover times after each fault. Exit
//	    status 1 on a violation.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/events"
)

// leasesBucket is the collector's leases bucket under the default prefix (docs/events.md).
const leasesBucket = events.DefaultKVPrefix + "_" + events.BucketLeases

type options struct {
	record, leader, check bool
	natsURL, out, stream  string

	leases, runs, faults string
	leaseTTL             time.Duration
	shards               int
	usersEvery           time.Duration
	auditEvery           time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.record, "record", false, "follow the leases bucket and write its revisions to -out")
	flag.BoolVar(&o.leader, "leader", false, "print the server name of -stream's leader")
	flag.BoolVar(&o.check, "check", false, "judge the recorded leases, runs and sync_runs")
	flag.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS URLs, comma-separated")
	flag.StringVar(&o.out, "out", "leases.jsonl", "file the revisions are written to (-record)")
	flag.StringVar(&o.stream, "stream", events.DefaultStream, "stream whose leader -leader prints")
	flag.StringVar(&o.leases, "leases", "leases.jsonl", "recorded lease revisions (-check)")
	flag.StringVar(&o.runs, "runs", "runs.jsonl", "the replicas' sync runs, crashtest -runs-file (-check)")
	flag.StringVar(&o.faults, "faults", "faults.txt", "injected faults: lines 'UNIX_MS ACTION TARGET' (-check)")
	flag.DurationVar(&o.leaseTTL, "lease-ttl", 5*time.Second, "the replicas' lease TTL")
	flag.IntVar(&o.shards, "shards", 8, "the replicas' shard count (crashtest uses 8)")
	flag.DurationVar(&o.usersEvery, "users-interval", time.Minute, "the tenants' users interval")
	flag.DurationVar(&o.auditEvery, "audit-interval", 30*time.Second, "the tenants' audit interval")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var (
		err error
		ok  = true
	)
	switch {
	case o.record:
		err = record(ctx, o)
	case o.leader:
		err = printLeader(ctx, o)
	case o.check:
		ok, err = check(o, os.Stdout)
	default:
		err = errors.New("one of -record, -leader, -check")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		stop()
		os.Exit(2)
	}
	if !ok {
		stop()
		os.Exit(1)
	}
}

// connect connects with pings every second, so that a paused node is left for another within
// a few seconds (the collector's default takes a minute).
func connect(ctx context.Context, url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := events.Connect(ctx, url, nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

func printLeader(ctx context.Context, o options) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, js, err := connect(ctx, o.natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	for {
		st, err := js.Stream(ctx, o.stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				fmt.Println(info.Cluster.Leader)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leader of %s: %w (last error: %v)", o.stream, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// revision is one revision of a key of the leases bucket.
type revision struct {
	Seq   uint64    `json:"seq"`
	Key   string    `json:"key"`
	Op    string    `json:"op"` // PUT, DEL or PURGE
	Owner string    `json:"owner,omitempty"`
	Time  time.Time `json:"time"` // when the stream stored it (the leader's clock)
	From  string    `json:"from,omitempty"`
}

// record follows the leases bucket's stream message by message (a direct get of the next
// message from a sequence on, which any replica of the stream answers), so that it keeps
// going while a node is down or paused; the bucket keeps events.LeaseHistory revisions per key
// for the TTL, so a revision is lost to it only if it falls behind by more than the TTL.
func record(ctx context.Context, o options) error {
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	write := func(r revision) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		return w.Flush()
	}
	nc, js, err := connect(ctx, o.natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	var st jetstream.Stream
	for {
		if st, err = js.Stream(ctx, "KV_"+leasesBucket); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil // no replica ever created the bucket: nothing to record
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintln(os.Stderr, "clustertest: recording", leasesBucket)
	prefix := "$KV." + leasesBucket + "."
	seen := map[uint64]bool{}
	keys := map[string]bool{}
	next := uint64(1)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := st.GetMsg(rctx, next, jetstream.WithGetMsgSubject(prefix+">"))
		cancel()
		if err != nil {
			// Nothing newer yet, an election under way or a node down: ask again.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		r := revision{Seq: m.Sequence, Key: strings.TrimPrefix(m.Subject, prefix), Op: "PUT", Time: m.Time.UTC(), From: "stream"}
		if op := m.Header.Get("KV-Operation"); op != "" {
			r.Op = op
		}
		r.Owner = ownerOf(m.Data)
		if err := write(r); err != nil {
			return err
		}
		seen[r.Seq], keys[r.Key] = true, true
		next = m.Sequence + 1
	}
	// What the bucket's history still holds and the stream reading missed.
	hctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.KeyValue(hctx, leasesBucket)
	if err != nil {
		return fmt.Errorf("open %s: %w", leasesBucket, err)
	}
	added := 0
	for key := range keys {
		hist, err := kv.History(hctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("history of %s: %w", key, err)
		}
		for _, e := range hist {
			if seen[e.Revision()] {
				continue
			}
			op := "PUT"
			switch e.Operation() {
			case jetstream.KeyValueDelete:
				op = "DEL"
			case jetstream.KeyValuePurge:
				op = "PURGE"
			}
			if err := write(revision{Seq: e.Revision(), Key: key, Op: op, Owner: ownerOf(e.Value()), Time: e.Created().UTC(), From: "history"}); err != nil {
				return err
			}
			added++
		}
	}
	fmt.Fprintf(os.Stderr, "clustertest: recorded %d revisions of %s (%d more from KV History)\n", len(seen), leasesBucket, added)
	return nil
}

func ownerOf(data []byte) string {
	var l struct {
		Owner string `json:"owner"`
	}
	_ = json.Unmarshal(data, &l)
	return l.Owner
}

// shardOf is the collector's mapping of a tenant to its shard (FNV-1a of the tenant id
// modulo the shard count, docs/events.md "KV buckets").
func shardOf(tenant string, shards int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(shards))
}

// tenure is one replica's uninterrupted hold of a shard: from its first write to the end of
// its lease (the last renewal plus the TTL, or the delete that released it, or the next
// holder's first write when that came earlier: a violation).
type tenure struct {
	owner      string
	from, last time.Time
	end        time.Time
	released   bool
}

// takeover is a change of a shard's holder.
type takeover struct {
	shard      string
	prev, next string
	prevLast   time.Time // the previous holder's last renewal (or its release)
	at         time.Time // the new holder's first write
	released   bool      // the previous holder deleted its lease (shutdown, rebalancing)
}

type fault struct {
	at             time.Time
	action, target string
}

func readJSONLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			continue // a line cut by a SIGKILL
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func readFaults(path string) ([]fault, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []fault
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("faults: %q: %w", line, err)
		}
		out = append(out, fault{at: time.UnixMilli(ms).UTC(), action: f[1], target: f[2]})
	}
	return out, nil
}

// leaseReport is what the lease history shows.
type leaseReport struct {
	revisions, unseen int
	tenures           map[string][]tenure // by shard key
	takeovers         []takeover
	violations        []string
}

// judgeLeases walks each shard's revisions in stream order. A PUT by the holder within the TTL
// of its last write renews; a PUT by another replica takes the shard over, which is only
// correct once the holder released it (DEL) or its lease expired (the holder's last write
// plus the TTL, when the bucket's TTL removes the entry and a Create can succeed).
func judgeLeases(revs []revision, ttl time.Duration) leaseReport {
	sort.Slice(revs, func(i, j int) bool { return revs[i].Seq < revs[j].Seq })
	rep := leaseReport{tenures: map[string][]tenure{}}
	uniq := revs[:0]
	for i, r := range revs {
		if i > 0 && r.Seq == revs[i-1].Seq {
			continue
		}
		uniq = append(uniq, r)
	}
	revs = uniq
	rep.revisions = len(revs)
	if len(revs) > 0 {
		rep.unseen = int(revs[len(revs)-1].Seq-revs[0].Seq+1) - len(revs)
		if revs[0].Seq != 1 {
			rep.unseen += int(revs[0].Seq - 1)
		}
	}
	type state struct {
		cur     *tenure
		relAt   time.Time
		relBy   string
		hasRel  bool
		history []tenure
	}
	shards := map[string]*state{}
	closeCur := func(s *state) {
		if s.cur != nil {
			s.history = append(s.history, *s.cur)
			s.cur = nil
		}
	}
	for _, r := range revs {
		if !strings.HasPrefix(r.Key, "shard.") {
			continue
		}
		s := shards[r.Key]
		if s == nil {
			s = &state{}
			shards[r.Key] = s
		}
		switch r.Op {
		case "DEL", "PURGE":
			if s.cur != nil {
				if r.Time.Before(s.cur.end) {
					s.cur.end = r.Time
				}
				s.cur.released = true
				s.relAt, s.relBy, s.hasRel = r.Time, s.cur.owner, true
			}
			closeCur(s)
			continue
		}
		if s.cur != nil && s.cur.owner == r.Owner && !r.Time.After(s.cur.last.Add(ttl)) {
			s.cur.last, s.cur.end = r.Time, r.Time.Add(ttl) // renewal
			continue
		}
		if s.cur != nil {
			// The holder did not release it: its lease must have expired.
			if r.Time.Before(s.cur.last.Add(ttl)) {
				rep.violations = append(rep.violations, fmt.Sprintf("%s: %s wrote at %s while %s's lease, renewed at %s, ran until %s",
					r.Key, r.Owner, r.Time.Format(time.StampMilli), s.cur.owner, s.cur.last.Format(time.StampMilli), s.cur.last.Add(ttl).Format(time.StampMilli)))
				s.cur.end = r.Time
			}
			rep.takeovers = append(rep.takeovers, takeover{shard: r.Key, prev: s.cur.owner, next: r.Owner, prevLast: s.cur.last, at: r.Time})
			closeCur(s)
		} else if s.hasRel {
			rep.takeovers = append(rep.takeovers, takeover{shard: r.Key, prev: s.relBy, next: r.Owner, prevLast: s.relAt, at: r.Time, released: true})
		}
		s.hasRel = false
		s.cur = &tenure{owner: r.Owner, from: r.Time, last: r.Time, end: r.Time.Add(ttl)}
	}
	for key, s := range shards {
		closeCur(s)
		rep.tenures[key] = s.history
	}
	return rep
}

// run is a sync run as a replica's RunObserver saw it (crashtest -runs-file).
type run = collector.RunInfo

func check(o options, out io.Writer) (bool, error) {
	ok := true
	fail := func(format string, args ...any) {
		ok = false
		fmt.Fprintf(out, "  VIOLATION "+format+"\n", args...)
	}
	revs, err := readJSONLines[revision](o.leases)
	if err != nil {
		return false, fmt.Errorf("leases: %w", err)
	}
	runs, err := readJSONLines[run](o.runs)
	if err != nil {
		return false, fmt.Errorf("runs: %w", err)
	}
	faults, err := readFaults(o.faults)
	if err != nil {
		return false, err
	}
	rep := judgeLeases(revs, o.leaseTTL)
	nTen := 0
	for _, ts := range rep.tenures {
		nTen += len(ts)
	}
	fmt.Fprintf(out, "leases: %d revisions (%d shards, %d tenures), %d revisions unseen, %d takeovers\n",
		rep.revisions, len(rep.tenures), nTen, rep.unseen, len(rep.takeovers))
	if rep.revisions == 0 {
		fail("no lease revision recorded")
	}
	if rep.unseen > 0 {
		fail("%d revisions of the leases bucket were not recorded: the history is incomplete", rep.unseen)
	}
	for _, v := range rep.violations {
		fail("%s", v)
	}
	if len(rep.violations) == 0 && rep.revisions > 0 {
		fmt.Fprintln(out, "leases: every shard had at most one holder at a time")
	}

	// Handover after each fault: the shards the faulty side held, taken over by another
	// replica (or re-taken after expiry), from the fault to the new holder's first write.
	printHandovers(out, rep, faults, o.leaseTTL)

	// Runs: each within its replica's tenure of the tenant's shard; no two replicas running a
	// tenant at once.
	outside := 0
	var overrun time.Duration
	for _, r := range runs {
		key := fmt.Sprintf("shard.%d", shardOf(r.Tenant, o.shards))
		in := false
		for _, t := range rep.tenures[key] {
			if t.owner == r.Replica && !r.Start.Before(t.from) && !r.End.After(t.end) {
				in = true
				break
			}
		}
		if !in {
			outside++
			best := time.Duration(math.MaxInt64)
			for _, t := range rep.tenures[key] {
				if t.owner == r.Replica && !r.Start.Before(t.from) && r.Start.Before(t.end) {
					best = min(best, r.End.Sub(t.end))
				}
			}
			if best != time.Duration(math.MaxInt64) {
				overrun = max(overrun, best)
			}
			fmt.Fprintf(out, "  run %s %s of %s by %s (%s to %s) is outside %s's lease of %s\n", r.Kind, r.RunID, r.Tenant, r.Replica,
				r.Start.Format(time.StampMilli), r.End.Format(time.StampMilli), r.Replica, key)
		}
	}
	byTenant := map[string][]run{}
	for _, r := range runs {
		byTenant[r.Tenant] = append(byTenant[r.Tenant], r)
	}
	concurrent := 0
	for tenant, rs := range byTenant {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
		for i := range rs {
			for j := i + 1; j < len(rs) && rs[j].Start.Before(rs[i].End); j++ {
				if rs[j].Replica != rs[i].Replica {
					concurrent++
					fail("tenant %s run by %s (%s to %s) and %s (%s to %s) at once", tenant, rs[i].Replica,
						rs[i].Start.Format(time.StampMilli), rs[i].End.Format(time.StampMilli), rs[j].Replica,
						rs[j].Start.Format(time.StampMilli), rs[j].End.Format(time.StampMilli))
				}
			}
		}
	}
	fmt.Fprintf(out, "runs: %d runs finished by the replicas, %d outside their replica's lease (longest overrun %s), %d tenants run by two replicas at once\n",
		len(runs), outside, overrun.Round(time.Millisecond), concurrent)
	if outside > 0 {
		fail("%d runs went on after their replica's lease ended", outside)
	}

	if late := checkLateness(runs, o, out); late > 0 {
		fail("%d routine runs later than the lease TTL (%s) beyond their interval", late, o.leaseTTL)
	}
	if ok {
		fmt.Fprintln(out, "check: OK")
	} else {
		fmt.Fprintln(out, "check: FAILED")
	}
	return ok, nil
}

// printHandovers reports, per injected fault, the takeovers of shards whose holder the fault
// silenced: from the fault to the new holder's first write.
func printHandovers(out io.Writer, rep leaseReport, faults []fault, ttl time.Duration) {
	for i, f := range faults {
		if f.action != "kill-collector" && f.action != "stop-nats" && f.action != "kill-nats" {
			continue
		}
		end := f.at.Add(10 * ttl)
		if i+1 < len(faults) && faults[i+1].action != "restart-collector" && faults[i+1].action != "cont-nats" && faults[i+1].action != "restart-nats" {
			end = faults[i+1].at
		}
		var ds []float64
		holders := map[string]bool{}
		for _, t := range rep.takeovers {
			// The holder's last write came before the fault and it never wrote again: the fault
			// ended its lease.
			if t.released || t.prevLast.After(f.at) || t.at.Before(f.at) || t.at.After(end) {
				continue
			}
			if f.action == "kill-collector" && t.prev != f.target {
				continue
			}
			ds = append(ds, t.at.Sub(f.at).Seconds())
			holders[t.next] = true
		}
		sort.Float64s(ds)
		if len(ds) == 0 {
			fmt.Fprintf(out, "handover after %s %s: no shard changed holder\n", f.action, f.target)
			continue
		}
		fmt.Fprintf(out, "handover after %s %s: %d shards taken over, %.1f s median, %.1f s max after the fault (lease TTL %s)\n",
			f.action, f.target, len(ds), ds[len(ds)/2], ds[len(ds)-1], ttl)
	}
	var rel []float64
	for _, t := range rep.takeovers {
		if t.released {
			rel = append(rel, t.at.Sub(t.prevLast).Seconds())
		}
	}
	if len(rel) > 0 {
		sort.Float64s(rel)
		fmt.Fprintf(out, "handover after a release (shutdown, rebalancing): %d, %.1f s median, %.1f s max\n", len(rel), rel[len(rel)/2], rel[len(rel)-1])
	}
}

// checkLateness reads every sync run the replicas finished (the runs file), replays included:
// a replica that takes over a shard runs again what its previous holder may not have finished,
// under the same run id, and schedules the tenant's next run from that replay's end. The
// stream cannot tell it: saas.sync.completed is deduplicated by run id, so it keeps the first
// replica's summary and loses the replay (a CI run saw a poll 9.8 s "late" that came 31 s
// after the replay). sync_runs cannot either: its key holds no kind (docs/schema.md). The
// scheduler sets a tenant's next run of a kind to the end of its previous run plus the interval
// with ±10 % jitter, so lateness = start − latest end of an earlier run of the kind − 1.1 ×
// interval (as cmd/scaletest measures it); a run is late when that exceeds the lease TTL. A
// tenant's first run of a kind has no previous one.
func checkLateness(runs []run, o options, out io.Writer) int {
	type tk struct {
		tenant string
		kind   events.RunKind
	}
	byKey := map[tk][]run{}
	for _, r := range runs {
		byKey[tk{r.Tenant, r.Kind}] = append(byKey[tk{r.Tenant, r.Kind}], r)
	}
	interval := map[events.RunKind]time.Duration{events.RunUsers: o.usersEvery, events.RunAudit: o.auditEvery}
	late := 0
	for _, kind := range []events.RunKind{events.RunUsers, events.RunAudit} {
		worst := math.Inf(-1)
		worstTenant := ""
		n := 0
		for key, rs := range byKey {
			if key.kind != kind {
				continue
			}
			sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
			prevEnd := rs[0].End
			for _, r := range rs[1:] {
				n++
				l := r.Start.Sub(prevEnd).Seconds() - 1.1*interval[kind].Seconds()
				if l > worst {
					worst, worstTenant = l, key.tenant
				}
				if l > o.leaseTTL.Seconds() {
					late++
					fmt.Fprintf(out, "  late %s run of %s: started %s, %.1f s after the previous run's end plus 1.1 intervals\n",
						kind, key.tenant, r.Start.Format(time.StampMilli), l)
				}
				if r.End.After(prevEnd) {
					prevEnd = r.End
				}
			}
		}
		fmt.Fprintf(out, "lateness: %d routine %s runs (interval %s), the latest %.1f s after its previous run's end plus 1.1 intervals (%s); bound: the lease TTL, %s\n",
			n, kind, interval[kind], worst, worstTenant, o.leaseTTL)
	}
	return late
}
