#!/usr/bin/env bash
# scale-test.sh: one collector process (the real cmd/collector binary, embedded NATS) against
# N simulated Greenhouse tenants, for each N given (default: 100 1000 3000), and a table of
# what it cost (docs/performance.md, "Scale").
#
#   deploy/local/scale-test.sh [TENANTS...]
#
# For each N it starts the simulator in its own process (cmd/scaletest -sim: N organisations,
# sizes log-uniform in MIN_USERS..MAX_USERS from SEED, EVENTS_PER_USER audit events per user
# over 30 days capped at MAX_EVENTS), starts the collector with a fresh data directory and
# ClickHouse database, connects every tenant through PUT /v1/tenants/{id}/connections/greenhouse
# (cmd/scaletest -connect, PARALLEL at a time), waits until every tenant has finished its
# first full sync (users, permissions, 30-day Audit Log backfill), then observes STEADY
# seconds of steady state with USERS_INTERVAL / AUDIT_INTERVAL per tenant, and reports:
# time to the first full sync of all tenants, lateness of the steady-state runs against
# their interval (from sync_runs), and the same for the routine runs of tenants already
# onboarded while the others still onboard (onboarding_*), the collector's CPU seconds
# (utime+stime from /proc) per
# phase and per tenant-cycle, its peak RSS (VmHWM), ClickHouse rows and bytes on disk
# (system.parts; each tenant count gets a fresh ClickHouse), the NATS store size and the events published. The simulator's and
# ClickHouse's CPU are reported beside the collector's: all three share the machine.
#
# Environment (defaults): MIN_USERS=10 MAX_USERS=5000, or USERS=U for equal organisations;
# EVENTS_PER_USER=5 MAX_EVENTS=20000 SEED=7 USERS_INTERVAL=1m AUDIT_INTERVAL=30s STEADY=180
# SETTLE=0 (seconds between the end of onboarding and the steady window);
# CONCURRENCY=16 PARALLEL=8 FIRST_TIMEOUT=3600 (seconds until every first sync is done);
# OUT=FILE appends each result row (tab-separated) to FILE; KEEP=1 keeps the work directory.
# CPU_PROFILE=S profiles the collector's CPU for the first S seconds of onboarding and prints
# where it went at the end of onboarding.
# COLLECTOR_GOEXPERIMENT, when set, is the collector's GOEXPERIMENT at build time (e.g.
# nogreenteagc, Go 1.26's earlier garbage collector).
# GOMEMLIMIT and GOGC, when set, reach the collector only (as the Kubernetes manifest sets them; GOMEMLIMIT from the
# memory limit).
#
# Per-event CPU (docs/performance.md, "Per-event CPU"): after the run, with the collector and
# the simulator stopped, every row the run left in ClickHouse is inserted again into copies of
# its tables by clickhouse-client in Native format (one INSERT per table, merges included), and
# nats bench (natscli NATSCLI_VERSION, default v0.5.1) publishes min(REF_MSGS=1000000, events
# published) messages of the run's mean stored size with --dedup to a JetStream server of its
# own (the embedded server of events/bench/server). The row then has the onboarding's CPU per
# million audit events (collector with its embedded NATS, ClickHouse) beside those references
# per million audit events (the NATS one scaled to the messages the run published), the ratio
# of ClickHouse's onboarding CPU to its CPU for the Native insert, and the ratio of
# collector + ClickHouse to all references together.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The collector's memory limit, kept from the simulator and the other Go tools: the simulator
# holds every organisation in memory (4 GiB at 10,000 tenants) and would spend its CPU collecting.
COLLECTOR_GOMEMLIMIT=${GOMEMLIMIT:-}
COLLECTOR_GOGC=${GOGC:-}
unset GOMEMLIMIT GOGC

TENANTS=("$@")
[ ${#TENANTS[@]} -gt 0 ] || TENANTS=(100 1000 3000)
MIN_USERS=${MIN_USERS:-10}
MAX_USERS=${MAX_USERS:-5000}
USERS=${USERS:-0}
EVENTS_PER_USER=${EVENTS_PER_USER:-5}
MAX_EVENTS=${MAX_EVENTS:-20000}
SEED=${SEED:-7}
USERS_INTERVAL=${USERS_INTERVAL:-1m}
AUDIT_INTERVAL=${AUDIT_INTERVAL:-30s}
STEADY=${STEADY:-180}
SETTLE=${SETTLE:-0}
CONCURRENCY=${CONCURRENCY:-16}
PARALLEL=${PARALLEL:-8}
FIRST_TIMEOUT=${FIRST_TIMEOUT:-3600}
REF_MSGS=${REF_MSGS:-1000000}
TOKEN=scaletest-token-$(head -c12 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY=k1:$(head -c32 /dev/urandom | base64)

command -v go >/dev/null || { echo "scale-test.sh: Go is required" >&2; exit 2; }
command -v curl >/dev/null || { echo "scale-test.sh: curl is required" >&2; exit 2; }
deploy/local/clickhouse.sh install
command -v clickhouse-client >/dev/null || { echo "scale-test.sh: clickhouse-client is required" >&2; exit 2; }

work=$(mktemp -d)
sim_pid=
col_pid=
sampler_pid=
ch_dir=
status=1
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$col_pid" ] && kill "$col_pid" 2>/dev/null && wait "$col_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  [ -n "$ch_dir" ] && deploy/local/clickhouse.sh stop "$ch_dir" || true
  if [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "scale-test.sh: logs and data kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 - <<'PY' 2>/dev/null || shuf -i 20000-60000 -n 1
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# cpu PID: utime+stime of the process in seconds (fields 14 and 15 of /proc/PID/stat).
cpu() {
  local tck
  tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"
}
# kb PID FIELD: a /proc/PID/status field in kB (VmHWM, VmRSS).
kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "NaN"; else printf "%.4f", a / b }'; }
per_m() { awk -v c="$1" -v n="$2" 'BEGIN { if (n == 0) print "NaN"; else printf "%.2f", c * 1000000 / n }'; } # CPU-s per million
secs() { # a Go duration of whole minutes or seconds (1m, 30s, 1h) in seconds
  case "$1" in *h) echo $(( ${1%h} * 3600 )) ;; *m) echo $(( ${1%m} * 60 )) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}

chq() { clickhouse-client --host 127.0.0.1 --port "$CH_PORT" -q "$1"; }
# query_costs FROM TO LABEL: with CH_QUERY_LOG=1, ClickHouse's queries between the two Unix
# times by kind (digits folded): count, CPU-seconds (user + system, from each query's
# ProfileEvents), wall seconds, rows read and written.
query_costs() {
  [ "${CH_QUERY_LOG:-0}" = 1 ] || return 0
  chq "SYSTEM FLUSH LOGS" || true
  echo "scale-test.sh: queries in $3 (count, CPU s, wall s, rows read, rows written, query):" >&2
  chq "SELECT count() AS n,
      round(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')] + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]) / 1e6, 2) AS cpu,
      round(sum(query_duration_ms) / 1e3, 2), sum(read_rows), sum(written_rows),
      substring(replaceRegexpAll(replaceRegexpAll(query, '[0-9]+', 'N'), '\\\\s+', ' '), 1, 110) AS q
    FROM system.query_log WHERE type = 2 AND event_time >= toDateTime($1) AND event_time < toDateTime($2)
    GROUP BY q ORDER BY cpu DESC LIMIT 25 FORMAT TabSeparated" | sed 's/^/    /' >&2 || true
  echo "scale-test.sh: parts in $3 by table (new parts, rows inserted, merges, rows merged, merge wall s):" >&2
  chq "SELECT table, countIf(event_type = 1), sumIf(rows, event_type = 1), countIf(event_type = 2),
      sumIf(rows, event_type = 2), round(sumIf(duration_ms, event_type = 2) / 1e3, 1)
    FROM system.part_log WHERE event_time >= toDateTime($1) AND event_time < toDateTime($2)
    GROUP BY table ORDER BY sumIf(rows, event_type = 2) DESC FORMAT TabSeparated" | sed 's/^/    /' >&2 || true
}

GOEXPERIMENT=${COLLECTOR_GOEXPERIMENT:-${GOEXPERIMENT:-}} go build -o "$work/collector" ./cmd/collector
go build -o "$work/scaletest" ./cmd/scaletest
go build -o "$work/natsserver" ./events/bench/server
# nats bench, the reference publisher of the per-event figures (natscli, as events/bench/compare.sh).
GOBIN=$work go install "github.com/nats-io/natscli/nats@${NATSCLI_VERSION:-v0.5.1}"

echo "scale-test.sh: machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo), $(uname -sm), $(go version | awk '{ print $3 }')" >&2
header="sizes	intervals	tenants	users	events	connect_s	first_sync_tenants	first_sync_p50_s	first_sync_all_s	first_cpu_s	first_ch_cpu_s	first_sim_cpu_s	steady_s	steady_cpu_s	steady_cpu_share	ch_cpu_share	sim_cpu_share	users_runs	audit_runs	cpu_ms_per_tenant_cycle	ch_ms_per_tenant_cycle	cpu_ms_per_run	users_late_pct	users_lateness_p99_s	users_lateness_max_s	audit_late_pct	audit_lateness_p99_s	audit_lateness_max_s	onboarding_audit_late_pct	onboarding_audit_lateness_max_s	users_without_run	audit_without_run	failed_runs	throttled	peak_rss_mib	rss_end_mib	ch_rows	ch_bytes	nats_bytes	events_published	store_failures	publish_failures	list_connections_s	onboard_col_cpu_per_m_events	onboard_ch_cpu_per_m_events	ref_rows	ref_ch_native_cpu_per_m_events	ref_client_cpu_per_m_events	ref_nats_msgs	ref_nats_size	ref_nats_cpu_per_m_events	ch_vs_native_ratio	total_vs_reference_ratio"
results=()

# reference_ch DB DIR: the CPU ClickHouse and clickhouse-client spend inserting every row the
# run left in DB's tables again, in one Native-format INSERT per table into a copy of each
# table (CREATE TABLE … AS: same engine and key), merges included (until none is left).
# Prints "rows server_cpu_s client_cpu_s".
reference_ch() {
  local db=$1 dir=$2 ref=${1}_ref tables t c0 c1 client rows=0
  mkdir -p "$dir/native"
  tables=$(chq "SELECT name FROM system.tables WHERE database = '$db' AND engine LIKE '%MergeTree' AND name != 'schema_migrations' FORMAT TabSeparated")
  chq "CREATE DATABASE IF NOT EXISTS $ref"
  for t in $tables; do
    chq "SELECT * FROM $db.$t FORMAT Native" >"$dir/native/$t.bin"
    chq "CREATE TABLE $ref.$t AS $db.$t"
    rows=$(( rows + $(chq "SELECT count() FROM $db.$t") ))
  done
  sleep 2
  c0=$(cpu "$ch_pid")
  local TIMEFORMAT='%3U %3S'
  client=$( { time (for t in $tables; do
      clickhouse-client --host 127.0.0.1 --port "$CH_PORT" -q "INSERT INTO $ref.$t FORMAT Native" <"$dir/native/$t.bin"
    done) ; } 2>&1 | tail -n1 | awk '{ printf "%.2f", $1 + $2 }')
  for _ in $(seq 1 120); do
    [ "$(chq "SELECT count() FROM system.merges WHERE database = '$ref'")" = 0 ] && break
    sleep 1
  done
  c1=$(cpu "$ch_pid")
  rm -rf "$dir/native"
  echo "$rows $(fsub "$c1" "$c0") $client"
}

# reference_nats MSGS SIZE DIR: the CPU of a JetStream server (the collector's embedded server,
# events/bench/server, file storage) and of `nats bench js pub async --dedup` publishing MSGS
# messages of SIZE bytes, each with a Nats-Msg-Id and its ack awaited. Prints
# "server_cpu_s client_cpu_s seconds".
reference_nats() {
  local msgs=$1 size=$2 dir=$3 pid url s0 s1 t0 t1 client
  mkdir -p "$dir/natsref"
  "$work/natsserver" -dir "$dir/natsref" >"$dir/natsref.url" 2>"$dir/natsref.log" &
  pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/natsref.url" ] && break; sleep 0.1; done
  url=$(head -n1 "$dir/natsref.url")
  s0=$(cpu "$pid"); t0=$(date +%s.%N)
  local TIMEFORMAT='%3U %3S'
  client=$( { time "$work/nats" -s "$url" bench js pub async benchsubject --create --purge --dedup --storage file \
      --batch 500 --msgs "$msgs" --size "$size" --no-progress >/dev/null 2>"$dir/natsref.err" ; } 2>&1 | tail -n1 | awk '{ printf "%.2f", $1 + $2 }')
  t1=$(date +%s.%N); s1=$(cpu "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir/natsref"
  echo "$(fsub "$s1" "$s0") $client $(fsub "$t1" "$t0")"
}

run_one() {
  local n=$1 dir=$work/run-$1 db=scale_$1
  mkdir -p "$dir"
  # A fresh ClickHouse per tenant count: no merges of an earlier run in this run's figures.
  ch_dir=$dir/clickhouse
  CH=$(deploy/local/clickhouse.sh start "$ch_dir")
  CH_PORT=${CH##*:}
  ch_pid=$(cat "$ch_dir/pid")
  local size_args=(-min-users "$MIN_USERS" -max-users "$MAX_USERS")
  [ "$USERS" != 0 ] && size_args=(-users "$USERS")

  # The simulator, in its own process.
  "$work/scaletest" -sim -addr 127.0.0.1:0 -tenants "$n" -seed "$SEED" "${size_args[@]}" \
    -events-per-user "$EVENTS_PER_USER" -max-events "$MAX_EVENTS" \
    -users-interval "$USERS_INTERVAL" -audit-interval "$AUDIT_INTERVAL" >"$dir/sim.out" 2>"$dir/sim.log" &
  sim_pid=$!
  for _ in $(seq 1 3000); do grep -q ready "$dir/sim.out" 2>/dev/null && break; kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
  grep -q ready "$dir/sim.out" || { echo "scale-test.sh: simulator did not start" >&2; cat "$dir/sim.log" >&2; return 1; }
  echo "scale-test.sh: $(cat "$dir/sim.out")" >&2
  local sim_addr users events
  sim_addr=$(sed -n 's/.*ready on \([^:]*:[0-9]*\):.*/\1/p' "$dir/sim.out")
  users=$(sed -n 's/.*organisations, \([0-9]*\) users.*/\1/p' "$dir/sim.out")
  events=$(sed -n 's/.* users, \([0-9]*\) audit events.*/\1/p' "$dir/sim.out")
  local SIM=http://$sim_addr

  # The collector: the real binary, embedded NATS on a random port, its own database.
  local api_port debug_port; api_port=$(free_port); debug_port=$(free_port)
  local API=http://127.0.0.1:$api_port
  COLLECTOR_DEBUG_ADDR=127.0.0.1:$debug_port COLLECTOR_HTTP_ADDR=127.0.0.1:$api_port COLLECTOR_API_TOKEN=$TOKEN COLLECTOR_SECRET_KEYS=$KEY \
    COLLECTOR_DATA_DIR=$dir/data COLLECTOR_CLICKHOUSE_ADDR=$CH \
    COLLECTOR_CLICKHOUSE_DATABASE=$db COLLECTOR_CONCURRENCY=$CONCURRENCY \
    COLLECTOR_ALLOW_ENDPOINT_OVERRIDE=true COLLECTOR_ALLOW_INSECURE_ENDPOINTS=true \
    COLLECTOR_ALLOWED_ENDPOINT_HOSTS=127.0.0.1 COLLECTOR_UNSAFE_ALLOW_LOOPBACK_ENDPOINTS_FOR_TESTS=true \
    env ${COLLECTOR_GOMEMLIMIT:+GOMEMLIMIT=$COLLECTOR_GOMEMLIMIT} ${COLLECTOR_GOGC:+GOGC=$COLLECTOR_GOGC} "$work/collector" >"$dir/collector.log" 2>&1 &
  col_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "$API/healthz" >/dev/null 2>&1 && break
    kill -0 "$col_pid" 2>/dev/null || { echo "scale-test.sh: the collector exited; see $dir/collector.log" >&2; return 1; }
    sleep 0.1
  done
  # RSS every 5 s, for the record (VmHWM gives the peak).
  ( while kill -0 "$col_pid" 2>/dev/null; do echo "$(date +%s) $(kb "$col_pid" VmRSS)"; sleep 5; done ) >"$dir/rss.log" 2>/dev/null &
  sampler_pid=$!

  local c0 ch0 sim0 connected_at
  c0=$(cpu "$col_pid"); ch0=$(cpu "$ch_pid"); sim0=$(cpu "$sim_pid")
  connected_at=$(date +%s)
  local prof_pid=
  if [ "${CPU_PROFILE:-0}" -gt 0 ]; then
    # The collector's CPU (its embedded NATS server's included) from the start of onboarding.
    curl -sf -o "$dir/cpu.pb.gz" "http://127.0.0.1:$debug_port/debug/pprof/profile?seconds=$CPU_PROFILE" &
    prof_pid=$!
  fi
  SCALETEST_API_TOKEN=$TOKEN "$work/scaletest" -connect -sim-url "$SIM" -api "$API" -parallel "$PARALLEL" >"$dir/connect.out" 2>>"$dir/connect.log" \
    || { echo "scale-test.sh: connecting failed:" >&2; cat "$dir/connect.out" "$dir/connect.log" >&2; return 1; }
  local connect_s; connect_s=$(sed -n 's/^connect_seconds=//p' "$dir/connect.out")
  echo "scale-test.sh: $n tenants connected in ${connect_s} s" >&2
  sed 's/^/    /' "$dir/connect.out" >&2

  # Every tenant's first full sync: its first successful Audit Log run (after its users sync).
  local deadline=$(( connected_at + FIRST_TIMEOUT )) done_n=0 last_print=0
  while :; do
    done_n=$(chq "SELECT uniqExact(tenant_id) FROM $db.sync_runs_buffer WHERE kind = 'audit' AND status = 'succeeded'" 2>/dev/null || echo 0)
    [ "$done_n" -ge "$n" ] && break
    kill -0 "$col_pid" 2>/dev/null || { echo "scale-test.sh: the collector exited; see $dir/collector.log" >&2; return 1; }
    if [ "$(date +%s)" -gt "$deadline" ]; then
      # Not fatal: the row says how many tenants made it (first_sync_tenants), and the
      # "steady state" that follows is still measured, though it is no steady state.
      echo "scale-test.sh: only $done_n of $n tenants finished a first sync within ${FIRST_TIMEOUT} s; measuring on" >&2
      break
    fi
    if [ $(( $(date +%s) - last_print )) -ge 30 ]; then
      echo "scale-test.sh: $done_n/$n tenants fully synced after $(( $(date +%s) - connected_at )) s, collector CPU $(cpu "$col_pid") s, RSS $(( $(kb "$col_pid" VmRSS) / 1024 )) MiB" >&2
      last_print=$(date +%s)
    fi
    sleep 2
  done
  local c1 ch1 sim1 stored
  c1=$(cpu "$col_pid"); ch1=$(cpu "$ch_pid"); sim1=$(cpu "$sim_pid")
  # The audit events stored by the end of onboarding: the per-event CPU figures divide by them,
  # not by every simulated event, which a run cut by FIRST_TIMEOUT has not all stored.
  stored=$(chq "SELECT count() FROM $db.audit_events")
  # Where the memory is at the end of onboarding: the Go heap by function (the embedded NATS
  # server's included), beside the RSS.
  if curl -sf -o "$dir/heap.pb.gz" "http://127.0.0.1:$debug_port/debug/pprof/heap"; then
    echo "scale-test.sh: heap at the end of onboarding (RSS $(( $(kb "$col_pid" VmRSS) / 1024 )) MiB; profile in $dir/heap.pb.gz):" >&2
    go tool pprof -top -sample_index=inuse_space -nodecount=12 "$work/collector" "$dir/heap.pb.gz" 2>/dev/null | sed -n '1,20p' | sed 's/^/    /' >&2 || true
  fi
  if [ -n "$prof_pid" ] && wait "$prof_pid"; then
    echo "scale-test.sh: the collector's CPU in the first ${CPU_PROFILE} s of onboarding (profile in $dir/cpu.pb.gz):" >&2
    go tool pprof -top -cum -nodecount=40 "$work/collector" "$dir/cpu.pb.gz" 2>/dev/null | sed -n '1,50p' | sed 's/^/    /' >&2 || true
    go tool pprof -top -nodecount=30 "$work/collector" "$dir/cpu.pb.gz" 2>/dev/null | sed -n '5,40p' | sed 's/^/    /' >&2 || true
  fi
  echo "scale-test.sh: $done_n/$n tenants fully synced after $(( $(date +%s) - connected_at )) s; steady state for ${STEADY} s" >&2
  query_costs "$connected_at" "$(date +%s)" "onboarding"

  # Steady state, after SETTLE seconds in which ClickHouse merges what onboarding wrote (the
  # runs keep their schedule then too; they are not in the window).
  if [ "$SETTLE" -gt 0 ]; then
    echo "scale-test.sh: settling for ${SETTLE} s before the steady window" >&2
    sleep "$SETTLE"
  fi
  local t0 t1 c2 ch2 sim2 c3 ch3 sim3 ev0 ev1
  local events_q="SELECT event, value FROM system.events WHERE event IN ('Query', 'SelectQuery', 'InsertQuery', 'InsertedRows', 'Merge', 'MergedRows', 'MergedUncompressedBytes') ORDER BY event FORMAT TabSeparated"
  ev0=$(chq "$events_q")
  echo "scale-test.sh: ClickHouse's work since it started (onboarding and settling; system.events):" >&2
  echo "$ev0" | sed 's/^/    /' >&2
  t0=$(date +%s); c2=$(cpu "$col_pid"); ch2=$(cpu "$ch_pid"); sim2=$(cpu "$sim_pid")
  # Which tables ClickHouse merges in the window: system.merges every 2 s, each merge once
  # (its result part) with the rows it reads.
  local parts_q="SELECT table, count(), sum(rows), max(level) FROM system.parts WHERE database = '$db' AND active GROUP BY table ORDER BY table FORMAT TabSeparated"
  echo "scale-test.sh: parts at the start of the steady window (table, parts, rows, max level):" >&2
  chq "$parts_q" | sed 's/^/    /' >&2
  local merges_pid
  ( end=$(( $(date +%s) + STEADY ))
    while [ "$(date +%s)" -lt "$end" ]; do
      chq "SELECT table, result_part_name, total_size_marks * 8192, num_parts FROM system.merges WHERE database = '$db' FORMAT TabSeparated" || true
      sleep 2
    done ) >"$dir/merges.tsv" &
  merges_pid=$!
  sleep "$STEADY"
  t1=$(date +%s); c3=$(cpu "$col_pid"); ch3=$(cpu "$ch_pid"); sim3=$(cpu "$sim_pid")
  ev1=$(chq "$events_q")
  wait "$merges_pid" || true
  echo "scale-test.sh: ClickHouse's work in the steady window (system.events, difference):" >&2
  join <(echo "$ev0") <(echo "$ev1") | awk '{ printf "    %s %.0f\n", $1, $3 - $2 }' >&2
  echo "scale-test.sh: merges seen in the window (table, merges, about the rows they read):" >&2
  sort -u -k1,2 "$dir/merges.tsv" | awk -F'\t' '{ n[$1]++; r[$1] += $3 } END { for (t in n) printf "    %s\t%d\t%.0f\n", t, n[t], r[t] }' | sort >&2
  echo "scale-test.sh: parts at the end of the steady window:" >&2
  chq "$parts_q" | sed 's/^/    /' >&2
  query_costs "$t0" "$t1" "the steady window"
  # Runs started before t1 are recorded when they finish.
  sleep 15

  # Every page of the connections list (1,000 a page): the time of all pages together.
  local list_s=0 cursor= page=0 page_s
  : >"$dir/connections.json"
  while :; do
    page_s=$(curl -sS -o "$dir/connections-page.json" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" \
      "$API/v1/connections?limit=1000${cursor:+&cursor=$cursor}")
    list_s=$(awk -v a="$list_s" -v b="$page_s" 'BEGIN { printf "%.3f", a + b }')
    cat "$dir/connections-page.json" >>"$dir/connections.json"
    cursor=$(sed -n 's/^ *"next_cursor": *"\([^"]*\)".*/\1/p' "$dir/connections-page.json")
    page=$((page + 1))
    [ -n "$cursor" ] && [ "$page" -lt 1000 ] || break
  done
  local connected_docs; connected_docs=$(grep -cE '^ *"state": "connected"' "$dir/connections.json" || true)
  curl -sS -H "Authorization: Bearer $TOKEN" "$API/metrics" >"$dir/metrics.txt"
  local published store_fail publish_fail
  published=$(awk '$1 == "collector_events_published_total" { printf "%.0f", $2 }' "$dir/metrics.txt")
  store_fail=$(awk '$1 == "collector_store_failures_total" { printf "%.0f", $2 }' "$dir/metrics.txt")
  publish_fail=$(awk '$1 == "collector_publish_failures_total" { printf "%.0f", $2 }' "$dir/metrics.txt")
  local peak rss_end
  peak=$(( $(kb "$col_pid" VmHWM) / 1024 )); rss_end=$(( $(kb "$col_pid" VmRSS) / 1024 ))

  chq "SELECT tenant_id, kind, status, toUnixTimestamp(started_at), toUnixTimestamp(finished_at), users, events, requests, throttled FROM $db.sync_runs_buffer FINAL FORMAT TabSeparated" >"$dir/sync_runs.tsv"
  "$work/scaletest" -analyze -tenants "$n" -connected-at "$connected_at" -from "$t0" -to "$t1" \
    -users-interval "$USERS_INTERVAL" -audit-interval "$AUDIT_INTERVAL" <"$dir/sync_runs.tsv" >"$dir/analysis.out"
  chq "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '$db' AND active GROUP BY table ORDER BY table FORMAT TabSeparated" >"$dir/parts.tsv"
  local ch_rows ch_bytes nats_bytes
  ch_rows=$(awk '{ s += $2 } END { print s + 0 }' "$dir/parts.tsv")
  ch_bytes=$(awk '{ s += $3 } END { print s + 0 }' "$dir/parts.tsv")
  nats_bytes=$(du -sb "$dir/data" | awk '{ print $1 }')

  kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=
  kill -TERM "$col_pid"; wait "$col_pid" || echo "scale-test.sh: the collector did not stop cleanly" >&2; col_pid=
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=
  # Per-event CPU: the onboarding's against bulk references of the same rows and messages
  # (docs/performance.md, "Per-event CPU"), the collector and simulator stopped.
  local ref_rows ref_ch_cpu ref_client_cpu ref_msgs ref_size nats_srv_cpu nats_cli_cpu nats_s
  published=${published:-0}
  read -r ref_rows ref_ch_cpu ref_client_cpu < <(reference_ch "$db" "$dir")
  ref_msgs=$(( published < REF_MSGS ? published : REF_MSGS ))
  ref_size=$(awk -v b="$nats_bytes" -v m="$published" 'BEGIN { s = (m > 0) ? int(b / m) : 512; if (s < 64) s = 64; if (s > 8192) s = 8192; print s }')
  read -r nats_srv_cpu nats_cli_cpu nats_s < <(reference_nats "$ref_msgs" "$ref_size" "$dir")
  deploy/local/clickhouse.sh stop "$ch_dir" || true
  ch_dir=
  rm -rf "$dir/data" "$dir/clickhouse"

  a() { sed -n "s/^$1=//p" "$dir/analysis.out"; }
  local steady_s=$(( t1 - t0 )) steady_cpu users_runs failed
  steady_cpu=$(fsub "$c3" "$c2")
  users_runs=$(a users_runs)
  failed=$(( $(a users_failed) + $(a audit_failed) ))
  local row
  local sizes=$MIN_USERS..$MAX_USERS; [ "$USERS" != 0 ] && sizes=$USERS
  row=$(printf '%s\t' "$sizes" "$USERS_INTERVAL/$AUDIT_INTERVAL" "$n" "$users" "$events" "$connect_s" "$(a first_sync_tenants)" "$(a first_sync_p50_s)" "$(a first_sync_all_s)" \
    "$(fsub "$c1" "$c0")" "$(fsub "$ch1" "$ch0")" "$(fsub "$sim1" "$sim0")" "$steady_s" "$steady_cpu" \
    "$(fdiv "$steady_cpu" "$steady_s")" "$(fdiv "$(fsub "$ch3" "$ch2")" "$steady_s")" "$(fdiv "$(fsub "$sim3" "$sim2")" "$steady_s")" \
    "$users_runs" "$(a audit_runs)" "$(fdiv "$(awk -v c="$steady_cpu" 'BEGIN { print c * 1000 }')" "$users_runs")" \
    "$(fdiv "$(awk -v c="$(fsub "$ch3" "$ch2")" 'BEGIN { print c * 1000 }')" "$users_runs")" \
    "$(fdiv "$(awk -v c="$steady_cpu" 'BEGIN { print c * 1000 }')" "$(( users_runs + $(a audit_runs) ))")" \
    "$(a users_late_pct)" "$(a users_lateness_p99_s)" "$(a users_lateness_max_s)" \
    "$(a audit_late_pct)" "$(a audit_lateness_p99_s)" "$(a audit_lateness_max_s)" \
    "$(a onboarding_audit_late_pct)" "$(a onboarding_audit_lateness_max_s)" \
    "$(a users_tenants_without_run)" "$(a audit_tenants_without_run)" "$failed" "$(( $(a users_throttled) + $(a audit_throttled) ))" \
    "$peak" "$rss_end" "$ch_rows" "$ch_bytes" "$nats_bytes" "$published" "$store_fail" "$publish_fail" "$list_s" \
    "$(per_m "$(fsub "$c1" "$c0")" "$stored")" "$(per_m "$(fsub "$ch1" "$ch0")" "$stored")" "$ref_rows" \
    "$(per_m "$ref_ch_cpu" "$events")" "$(per_m "$ref_client_cpu" "$events")" "$ref_msgs" "$ref_size" \
    "$(per_m "$(awk -v a="$nats_srv_cpu" -v b="$nats_cli_cpu" -v p="$published" -v m="$ref_msgs" 'BEGIN { printf "%.3f", (m > 0) ? (a + b) * p / m : 0 }')" "$events")" \
    "$(fdiv "$(fsub "$ch1" "$ch0")" "$ref_ch_cpu")" \
    "$(fdiv "$(awk -v a="$(fsub "$c1" "$c0")" -v b="$(fsub "$ch1" "$ch0")" 'BEGIN { print a + b }')" \
      "$(awk -v a="$ref_ch_cpu" -v b="$ref_client_cpu" -v n="$nats_srv_cpu" -v c="$nats_cli_cpu" -v p="$published" -v m="$ref_msgs" 'BEGIN { print a + b + ((m > 0) ? (n + c) * p / m : 0) }')")")
  row=${row%$'\t'}
  results+=("$row")
  [ -n "${OUT:-}" ] && printf '%s\n' "$row" >>"$OUT"
  echo "scale-test.sh: N=$n done; $connected_docs connection documents 'connected'; ClickHouse tables:" >&2
  sed 's/^/    /' "$dir/parts.tsv" >&2
  sed 's/^/    /' "$dir/analysis.out" >&2
  paste <(tr '\t' '\n' <<<"$header") <(tr '\t' '\n' <<<"$row") | sed 's/^/    /' >&2
}

if [ -n "${OUT:-}" ] && [ ! -s "$OUT" ]; then printf '%s\n' "$header" >"$OUT"; fi
for n in "${TENANTS[@]}"; do
  echo "scale-test.sh: === $n tenants (sizes $([ "$USERS" != 0 ] && echo "$USERS" || echo "$MIN_USERS..$MAX_USERS log-uniform") users, $EVENTS_PER_USER events/user capped at $MAX_EVENTS, intervals $USERS_INTERVAL/$AUDIT_INTERVAL, concurrency $CONCURRENCY) ===" >&2
  run_one "$n"
done

echo
printf '%s\n' "$header"
printf '%s\n' "${results[@]}"
status=0
