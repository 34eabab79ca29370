#!/usr/bin/env bash
# crash-test.sh: kills a collector replica with SIGKILL at random moments, N times (default 30),
# then lets it finish and checks that ClickHouse and the NATS stream hold exactly the
# simulator's ground truth: no lost user, audit event or daily figure, no repeated user event
# or alert (docs/reliability.md). It fails, too, when no kill landed mid-sync or the replica
# exited by itself.
#
#   deploy/local/crash-test.sh [N]
#
# It installs Debian's ClickHouse when missing and starts a throwaway one, serves a
# deterministic simulator (cmd/crashtest -sim: 5 tenants, 200-800 users, 5k-20k events),
# connects the tenants through the API once, then loops: start the replica (cmd/crashtest,
# embedded NATS in process on a fixed directory), ask for a sync of every tenant, wait 0.7-6.2 s
# after the start, kill -9. Finally it starts the
# replica once more, asks every tenant for a sync, waits until each has finished one, stops the
# replica and runs cmd/crashtest -verify. Exit status: 0 when everything matches.
# Environment: KEEP=1 keeps the work directory (logs, data) even on success.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-30}
TOKEN=crashtest-token-0123456789abcdef
FINAL_TIMEOUT=${FINAL_TIMEOUT:-300}

command -v go >/dev/null || { echo "crash-test.sh: Go is required" >&2; exit 2; }
command -v curl >/dev/null || { echo "crash-test.sh: curl is required" >&2; exit 2; }
deploy/local/clickhouse.sh install

work=$(mktemp -d)
sim_pid=
col_pid=
status=1
cleanup() {
  [ -n "$col_pid" ] && kill -9 "$col_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  deploy/local/clickhouse.sh stop "$work/clickhouse" || true
  if [ "$status" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  else
    echo "crash-test.sh: logs and data kept in $work" >&2
  fi
}
trap cleanup EXIT

free_port() {
  python3 - <<'PY' 2>/dev/null || shuf -i 20000-60000 -n 1
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

CH=$(deploy/local/clickhouse.sh start "$work/clickhouse")
echo "crash-test.sh: ClickHouse at $CH" >&2
go build -o "$work/crashtest" ./cmd/crashtest

sim_port=$(free_port)
api_port=$(free_port)
SIM=http://127.0.0.1:$sim_port
API=http://127.0.0.1:$api_port

"$work/crashtest" -sim -addr "127.0.0.1:$sim_port" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do grep -q ready "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/sim.out" || { echo "crash-test.sh: simulator did not start" >&2; cat "$work/sim.log" >&2; exit 1; }
orgs=$(curl -sSf "$SIM/orgs")

start_collector() {
  "$work/crashtest" -addr "127.0.0.1:$api_port" -data-dir "$work/data" \
    -clickhouse-addr "$CH" -clickhouse-database crashtest -api-token "$TOKEN" >>"$work/collector.log" 2>&1 &
  col_pid=$!
}

kill_collector() {
  kill -9 "$col_pid" 2>/dev/null || true
  wait "$col_pid" 2>/dev/null || true
  col_pid=
}

wait_healthy() {
  for _ in $(seq 1 600); do
    curl -sf "$API/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$col_pid" 2>/dev/null || { echo "crash-test.sh: the collector exited; see $work/collector.log" >&2; return 1; }
    sleep 0.1
  done
  echo "crash-test.sh: the collector's API did not answer within 60 s" >&2
  return 1
}

api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }

# Connect every tenant once, then crash the replica that did it.
start_collector
wait_healthy
for org in $orgs; do
  code=$(curl -sSf "$SIM/connect/$org" | api -o "$work/connect-$org.json" -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/json' --data-binary @- "$API/v1/tenants/$org/connections/greenhouse")
  [ "$code" = 200 ] || { echo "crash-test.sh: connecting $org answered $code: $(cat "$work/connect-$org.json")" >&2; exit 1; }
done
echo "crash-test.sh: connected $(echo $orgs | wc -w) tenants" >&2
kill_collector

# The kill loop. A kill counts as "mid-sync" when the simulator served Greenhouse requests in
# the 200 ms before it.
started=$(date +%s)
exited=0
midsync=0
for i in $(seq 1 "$N"); do
  start_collector
  # A restarted replica resumes each tenant's schedule rather than syncing at once: ask for a
  # sync of every tenant as soon as the API answers, so that kills keep landing mid-sync.
  ( for _ in $(seq 1 100); do curl -sf "$API/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
    for org in $orgs; do api -o /dev/null -X POST "$API/v1/tenants/$org/connections/greenhouse/sync" 2>/dev/null || true; done ) &
  req_pid=$!
  ms=$((500 + RANDOM % 5501))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  if ! kill -0 "$col_pid" 2>/dev/null; then
    exited=$((exited + 1))
    echo "crash-test.sh: run $i: the collector had exited by itself before the kill" >&2
  fi
  r1=$(curl -sSf "$SIM/requests")
  sleep 0.2
  r2=$(curl -sSf "$SIM/requests")
  kill_collector
  wait "$req_pid" 2>/dev/null || true # the sync requests
  busy=
  if [ "$r2" -gt "$r1" ]; then midsync=$((midsync + 1)); busy=" (mid-sync)"; fi
  echo "crash-test.sh: kill $i/$N after $((ms + 200)) ms$busy" >&2
done
loop_secs=$(( $(date +%s) - started ))
loop_syncs=$(grep -c '"message":"sync finished"' "$work/collector.log" || true)

# The final run: every tenant completes one requested sync.
final_start=$(date +%s)
start_collector
wait_healthy
declare -A run_ids
for org in $orgs; do
  run_ids[$org]=$(api -X POST "$API/v1/tenants/$org/connections/greenhouse/sync" | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' || true)
  [ -n "${run_ids[$org]}" ] || { echo "crash-test.sh: sync request for $org failed" >&2; exit 1; }
done
pending="$orgs"
deadline=$(( $(date +%s) + FINAL_TIMEOUT ))
while [ -n "$pending" ]; do
  next=
  for org in $pending; do
    doc=$(api "$API/v1/tenants/$org/connections/greenhouse" || true)
    if grep -q "\"run_id\": \"${run_ids[$org]}\"" <<<"$doc" && grep -q '"kind": "audit"' <<<"$doc" \
      && grep -q '"status": "succeeded"' <<<"$doc" && grep -q '"audit_synced_through": "' <<<"$doc"; then
      continue
    fi
    next="$next $org"
  done
  pending=$next
  [ -z "$pending" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "crash-test.sh: not synced within ${FINAL_TIMEOUT} s:$pending" >&2
    for org in $pending; do api "$API/v1/tenants/$org/connections/greenhouse" >&2 || true; done
    exit 1
  fi
  sleep 0.5
done
final_secs=$(( $(date +%s) - final_start ))
kill -TERM "$col_pid"
for _ in $(seq 1 300); do kill -0 "$col_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$col_pid" 2>/dev/null; then
  echo "crash-test.sh: the final collector did not stop within 30 s of SIGTERM" >&2
  exit 1
fi
wait "$col_pid" || { echo "crash-test.sh: the final collector did not stop cleanly" >&2; exit 1; }
col_pid=

echo
echo "crash-test.sh: $N kills over ${loop_secs} s ($midsync mid-sync, $exited runs ended by themselves, $loop_syncs sync runs finished between kills); final run synced every tenant in ${final_secs} s"
if [ "$exited" -gt 0 ] || [ "$midsync" -eq 0 ]; then
  echo "crash-test.sh: FAIL: $exited runs exited by themselves, $midsync kills mid-sync (want 0 and at least 1)"
  exit 1
fi
if "$work/crashtest" -verify -sim-url "$SIM" -data-dir "$work/data" -clickhouse-addr "$CH" -clickhouse-database crashtest; then
  status=0
  echo "crash-test.sh: PASS: $N kills survived"
else
  echo "crash-test.sh: FAIL"
fi
exit "$status"
