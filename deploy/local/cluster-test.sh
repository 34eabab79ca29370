#!/usr/bin/env bash
# cluster-test.sh: three collector replicas on a 3-node JetStream cluster on loopback, with
# faults injected while they sync, then checked against the simulator's truth
# (docs/reliability.md, "A JetStream cluster under failure").
#
#   deploy/local/cluster-test.sh [--short | --bench]
#
# It starts a throwaway ClickHouse (deploy/local/clickhouse.sh), three NATS nodes (cmd/natsnode,
# the nats-server dependency) from deploy/nats/nats-{0,1,2}.conf with their addresses moved to
# free loopback ports and their stores to the work directory, the deterministic simulator of
# the crash test (cmd/crashtest -sim: five organisations), a recorder of the leases bucket
# (cmd/clustertest -record) and three replicas (cmd/crashtest, -stream-replicas 3, replica ids
# r1 r2 r3, -nats-url naming all three nodes, lease TTL LEASE_TTL). It connects the tenants
# through r1's API, then for each round (3, or 1 with --short), while syncs run (it asks for a
# sync of every tenant before each fault):
#   1. SIGKILL the node leading the SAAS stream, restart it after 5 s;
#   2. SIGKILL one replica (r2, r3, r1 in turn), restart it after 3 s;
#   3. SIGSTOP the node leading the leases bucket for twice the lease TTL, then SIGCONT;
# then lets the schedule run (STEADY seconds: 120, or 45 with --short), asks every tenant for a
# sync, waits until each has finished one, stops the replicas with SIGTERM and checks:
#   - cmd/crashtest -verify: ClickHouse and the stream (read from the cluster) equal the truth,
#     no CloudEvents id twice, one saas.user.changed per user, no alert repeated;
#   - cmd/clustertest -check: from the recorded lease history, every shard (so every tenant)
#     had at most one holder at a time; no run went on after its replica's lease ended and no
#     two replicas ran a tenant at once (the replicas' runs files); no routine run was later
#     than the lease TTL beyond its interval (saas.sync.completed); the handover time after
#     each fault.
# The full run then compares publishing on the cluster (restarted with empty stores) with 3
# replicas against one node of the same binary with 1 (events/bench/compare.sh: nats bench and
# the events publisher, 512-byte messages, MSGS each, 5 repetitions, medians; BENCH=0 skips
# it); --bench runs that comparison alone.
# Exit status: 0 when everything holds. KEEP=1 keeps the work directory (logs, data).
set -euo pipefail
cd "$(dirname "$0")/../.."

SHORT= BENCH_ONLY=
case "${1:-}" in
  --short) SHORT=1 ;;
  --bench) BENCH_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--short | --bench]" >&2; exit 2 ;;
esac
TTL_S=${LEASE_TTL:-5}
if [ -n "$SHORT" ]; then ROUNDS=${ROUNDS:-1}; STEADY=${STEADY:-45}; BENCH=0; else ROUNDS=${ROUNDS:-3}; STEADY=${STEADY:-120}; BENCH=${BENCH:-1}; fi
FINAL_TIMEOUT=${FINAL_TIMEOUT:-300}
TOKEN=clustertest-token-0123456789abcdef
DB=clustertest

command -v go >/dev/null || { echo "cluster-test.sh: Go is required" >&2; exit 2; }
command -v curl >/dev/null || { echo "cluster-test.sh: curl is required" >&2; exit 2; }
deploy/local/clickhouse.sh install

work=$(mktemp -d)
status=1
declare -a nats_pid=("" "" "" "") col_pid=("" "" "" "")
sim_pid=
rec_pid=
say() { echo "cluster-test.sh: $*" >&2; }
cleanup() {
  for i in 0 1 2 3; do [ -n "${nats_pid[$i]}" ] && kill -CONT "${nats_pid[$i]}" 2>/dev/null || true; done
  for k in 1 2 3; do [ -n "${col_pid[$k]}" ] && kill -9 "${col_pid[$k]}" 2>/dev/null || true; done
  [ -n "$rec_pid" ] && kill -9 "$rec_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  for i in 0 1 2 3; do [ -n "${nats_pid[$i]}" ] && kill "${nats_pid[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/local/clickhouse.sh stop "$work/clickhouse" || true
  if [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  else
    say "logs and data kept in $work"
  fi
}
trap cleanup EXIT

free_port() {
  python3 - <<'PY' 2>/dev/null || shuf -i 20000-60000 -n 1
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}
now_ms() { date +%s%3N; }
fault() { echo "$(now_ms) $1 $2" >>"$work/faults.txt"; say "$(date +%T) $1 $2"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then say "$what: not within $secs s"; return 1; fi
    sleep 0.2
  done
}

go build -o "$work/" ./cmd/natsnode ./cmd/crashtest ./cmd/clustertest

# The three nodes: deploy/nats's configurations with loopback ports and local stores.
declare -a client mon route
for i in 0 1 2; do client[$i]=$(free_port); mon[$i]=$(free_port); route[$i]=$(free_port); done
for i in 0 1 2; do
  mkdir -p "$work/nats-$i/data"
  sed -e "s#0\.0\.0\.0:4222#127.0.0.1:${client[$i]}#" -e "s#0\.0\.0\.0:8222#127.0.0.1:${mon[$i]}#" \
    -e "s#0\.0\.0\.0:6222#127.0.0.1:${route[$i]}#" -e "s#store_dir: /data#store_dir: \"$work/nats-$i/data\"#" \
    -e "s#max_file_store: 20GB#max_file_store: 2GB#" \
    -e "s#nats-route://nats-0:6222#nats-route://127.0.0.1:${route[0]}#" \
    -e "s#nats-route://nats-1:6222#nats-route://127.0.0.1:${route[1]}#" \
    -e "s#nats-route://nats-2:6222#nats-route://127.0.0.1:${route[2]}#" \
    "deploy/nats/nats-$i.conf" >"$work/nats-$i/nats.conf"
  if grep -q -e '0\.0\.0\.0' -e 'nats-route://nats-' -e '/data$' "$work/nats-$i/nats.conf"; then
    say "deploy/nats/nats-$i.conf changed shape: an address was not moved to loopback"; exit 1
  fi
done
NATS_URL="nats://127.0.0.1:${client[0]},nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]}"
start_nats() {
  "$work/natsnode" -c "$work/nats-$1/nats.conf" >>"$work/nats-$1/log" 2>&1 &
  nats_pid[$1]=$!
}
nats_healthy() {
  kill -0 "${nats_pid[$1]}" 2>/dev/null || { say "nats-$1 exited: $(tail -n 3 "$work/nats-$1/log")"; exit 1; }
  curl -sf "http://127.0.0.1:${mon[$1]}/healthz" >/dev/null
}
meta_leader() { curl -sf "http://127.0.0.1:${mon[$1]}/jsz" | grep -q '"leader": *"nats-'; }
start_cluster() {
  for i in 0 1 2; do start_nats "$i"; done
  for i in 0 1 2; do wait_for 120 "NATS node nats-$i healthy" nats_healthy "$i"; done
  for i in 0 1 2; do wait_for 120 "NATS node nats-$i knowing the JetStream meta leader" meta_leader "$i"; done
  say "NATS cluster at $NATS_URL"
}
stop_nats() {
  for i in "$@"; do
    [ -n "${nats_pid[$i]}" ] || continue
    kill "${nats_pid[$i]}" 2>/dev/null || true
    wait "${nats_pid[$i]}" 2>/dev/null || true
    nats_pid[$i]=
  done
}

# bench: publishing on the cluster with 3 replicas, then on one node with 1, each with empty
# stores, side by side (events/bench/compare.sh).
bench() {
  local msgs=${MSGS:-50000}
  stop_nats 0 1 2
  for i in 0 1 2; do rm -rf "$work/nats-$i/data"; mkdir -p "$work/nats-$i/data"; done
  start_cluster
  say "publishing on the cluster, 3 replicas"
  NATS_URL=$NATS_URL REPLICAS=3 MSGS=$msgs events/bench/compare.sh 512 | tee "$work/bench-r3.txt"
  stop_nats 0 1 2
  local port mport
  port=$(free_port); mport=$(free_port)
  mkdir -p "$work/single"
  "$work/natsnode" -js -sd "$work/single" -a 127.0.0.1 -p "$port" -m "$mport" >"$work/single.log" 2>&1 &
  nats_pid[3]=$!
  mon[3]=$mport
  wait_for 60 "the single NATS node healthy" nats_healthy 3
  say "publishing on one node, 1 replica"
  NATS_URL=nats://127.0.0.1:$port REPLICAS=1 MSGS=$msgs events/bench/compare.sh 512 | tee "$work/bench-r1.txt"
  stop_nats 3
  echo
  echo "publish rate, median of 5 runs of $msgs messages of 512 B, msgs/s:"
  printf '%-24s %12s %12s\n' "" "nats bench" "events"
  printf '%-24s %12s %12s\n' "3 nodes, 3 replicas" "$(awk '/^512B/ {print $2}' "$work/bench-r3.txt")" "$(awk '/^512B/ {print $4}' "$work/bench-r3.txt")"
  printf '%-24s %12s %12s\n' "1 node, 1 replica" "$(awk '/^512B/ {print $2}' "$work/bench-r1.txt")" "$(awk '/^512B/ {print $4}' "$work/bench-r1.txt")"
}

if [ -n "$BENCH_ONLY" ]; then
  bench
  status=0
  exit 0
fi

start_cluster
CH=$(deploy/local/clickhouse.sh start "$work/clickhouse")
say "ClickHouse at $CH"

sim_port=$(free_port)
SIM=http://127.0.0.1:$sim_port
"$work/crashtest" -sim -addr "127.0.0.1:$sim_port" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
wait_for 30 "simulator ready" grep -q ready "$work/sim.out"
orgs=$(curl -sSf "$SIM/orgs")

"$work/clustertest" -record -nats-url "$NATS_URL" -out "$work/leases.jsonl" 2>"$work/recorder.log" &
rec_pid=$!

declare -a api=("" "" "" "")
for k in 1 2 3; do api[$k]=$(free_port); done
start_collector() {
  "$work/crashtest" -addr "127.0.0.1:${api[$1]}" -data-dir "$work/data-$1" -clickhouse-addr "$CH" -clickhouse-database "$DB" \
    -api-token "$TOKEN" -nats-url "$NATS_URL" -replica-id "r$1" -stream-replicas 3 -lease-ttl "${TTL_S}s" \
    -runs-file "$work/runs.jsonl" >>"$work/collector-$1.log" 2>&1 &
  col_pid[$1]=$!
}
collector_healthy() {
  kill -0 "${col_pid[$1]}" 2>/dev/null || { say "replica r$1 exited; see $work/collector-$1.log"; exit 1; }
  curl -sf "http://127.0.0.1:${api[$1]}/healthz" >/dev/null
}
wait_collector() {
  local deadline=$(( $(date +%s) + 120 ))
  until collector_healthy "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || { say "replica r$1 not healthy within 120 s"; exit 1; }
    sleep 0.2
  done
}
ask_syncs() { # ask_syncs K: a sync of every tenant through replica K
  for org in $orgs; do
    curl -sS -m 30 -o /dev/null -H "Authorization: Bearer $TOKEN" -X POST "http://127.0.0.1:${api[$1]}/v1/tenants/$org/connections/greenhouse/sync" || true
  done
}
# r1 first: it creates the R3 stream and buckets, which the others then find.
for k in 1 2 3; do start_collector "$k"; wait_collector "$k"; done
for org in $orgs; do
  code=$(curl -sSf "$SIM/connect/$org" | curl -sS -m 60 -H "Authorization: Bearer $TOKEN" -o "$work/connect-$org.json" -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:${api[1]}/v1/tenants/$org/connections/greenhouse")
  [ "$code" = 200 ] || { say "connecting $org answered $code: $(cat "$work/connect-$org.json")"; exit 1; }
done
say "connected $(echo $orgs | wc -w) tenants; $ROUNDS rounds of faults, lease TTL ${TTL_S} s"
started=$(date +%s)

# node_of NAME: the index of a node's server_name (nats-N).
node_of() { echo "${1#nats-}"; }
leader_of() { "$work/clustertest" -leader -nats-url "$NATS_URL" -stream "$1"; }

sleep 3 # first syncs under way
for round in $(seq 1 "$ROUNDS"); do
  live=$(( (round % 3) + 1 ))          # a replica that stays up this round
  victim=$(( ((round + 1) % 3) + 1 ))  # r2, r3, r1 …

  # 1. SIGKILL the SAAS stream leader's node mid-sync, restart it.
  ask_syncs "$live"
  sleep 1
  n=$(node_of "$(leader_of SAAS)")
  kill -9 "${nats_pid[$n]}"; wait "${nats_pid[$n]}" 2>/dev/null || true
  fault kill-nats "nats-$n"
  sleep 5
  start_nats "$n"
  fault restart-nats "nats-$n"
  wait_for 120 "nats-$n healthy after its restart" nats_healthy "$n"
  sleep 10

  # 2. SIGKILL a replica mid-sync, restart it.
  ask_syncs "$live"
  sleep 1
  kill -9 "${col_pid[$victim]}"; wait "${col_pid[$victim]}" 2>/dev/null || true
  fault kill-collector "r$victim"
  sleep 3
  start_collector "$victim"
  fault restart-collector "r$victim"
  wait_collector "$victim"
  sleep 10

  # 3. Pause the node leading the leases bucket for longer than the lease TTL.
  ask_syncs "$live"
  sleep 1
  n=$(node_of "$(leader_of KV_saas_leases)")
  kill -STOP "${nats_pid[$n]}"
  fault stop-nats "nats-$n"
  sleep $(( 2 * TTL_S ))
  kill -CONT "${nats_pid[$n]}"
  fault cont-nats "nats-$n"
  wait_for 120 "nats-$n healthy after SIGCONT" nats_healthy "$n"
  sleep 10
done
say "faults done after $(( $(date +%s) - started )) s; the schedule runs for $STEADY s"
sleep "$STEADY"
for k in 1 2 3; do collector_healthy "$k" || true; done

# Every tenant finishes one more requested sync: its Audit Log part succeeds (the replicas'
# runs file says so; a requested run that failed is asked for again).
declare -A run_ids
request_sync() {
  run_ids[$1]=$(curl -sS -m 30 -H "Authorization: Bearer $TOKEN" -X POST "http://127.0.0.1:${api[1]}/v1/tenants/$1/connections/greenhouse/sync" \
    | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' || true)
  [ -n "${run_ids[$1]}" ] || { say "sync request for $1 failed"; exit 1; }
}
run_ended() { # run_ended ID STATUS: the audit part of run ID ended with STATUS
  grep -F "\"RunID\":\"$1\"" "$work/runs.jsonl" 2>/dev/null | grep -F '"Kind":"audit"' | grep -qF "\"Status\":\"$2\""
}
for org in $orgs; do request_sync "$org"; done
pending="$orgs"
deadline=$(( $(date +%s) + FINAL_TIMEOUT ))
while [ -n "$pending" ]; do
  next=
  for org in $pending; do
    run_ended "${run_ids[$org]}" succeeded && continue
    if run_ended "${run_ids[$org]}" failed; then
      say "the requested sync of $org failed; asking again"
      request_sync "$org"
    fi
    next="$next $org"
  done
  pending=$next
  [ -z "$pending" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then
    say "not synced within ${FINAL_TIMEOUT} s:$pending"
    exit 1
  fi
  sleep 0.5
done
say "every tenant finished its last sync $(( $(date +%s) - started )) s after the faults began"

for k in 1 2 3; do kill -TERM "${col_pid[$k]}"; done
for k in 1 2 3; do
  for _ in $(seq 1 300); do kill -0 "${col_pid[$k]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${col_pid[$k]}" 2>/dev/null; then say "replica r$k did not stop within 30 s of SIGTERM"; exit 1; fi
  wait "${col_pid[$k]}" || { say "replica r$k did not stop cleanly; see $work/collector-$k.log"; exit 1; }
  col_pid[$k]=
done
kill -TERM "$rec_pid"
wait "$rec_pid" || { say "the lease recorder failed; see $work/recorder.log"; exit 1; }
rec_pid=
cat "$work/recorder.log" >&2

echo
ok=1
"$work/crashtest" -verify -nats-url "$NATS_URL" -sim-url "$SIM" -clickhouse-addr "$CH" -clickhouse-database "$DB" || ok=
"$work/clustertest" -check -leases "$work/leases.jsonl" -runs "$work/runs.jsonl" -faults "$work/faults.txt" \
  -lease-ttl "${TTL_S}s" -users-interval 1m -audit-interval 30s || ok=

if [ -n "$ok" ] && [ "$BENCH" = 1 ]; then
  echo
  bench
fi

echo
if [ -n "$ok" ]; then
  status=0
  say "PASS ($ROUNDS rounds, $(( $(date +%s) - started )) s)"
else
  say "FAIL"
fi
exit "$status"
