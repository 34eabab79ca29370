#!/usr/bin/env bash
# crash-actions-test.sh: the SIGKILL loop of reclaim actions (docs/reliability.md, "Actions and
# crashes"). A reclaim action of every inactive license holder of one organisation (plus the
# admin user and an unknown id, which guards refuse) runs in small chunks while its replica is
# killed with SIGKILL at random moments, N times (default 20); a last replica finishes it.
# cmd/crashtest -verify-actions then checks that no deactivation was sent twice (the
# simulator's accepted writes), that every user has an outcome equal in the API, the actions
# table and the stream, that each done user is deactivated and nobody else was written.
#
#   deploy/local/crash-actions-test.sh [N]
#
# Environment: KEEP=1 keeps the work directory (logs, data) even on success.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-20}
TOKEN=crashtest-token-0123456789abcdef
ORG=crash1
FINAL_TIMEOUT=${FINAL_TIMEOUT:-300}

command -v go >/dev/null || { echo "crash-actions-test.sh: Go is required" >&2; exit 2; }
command -v curl >/dev/null || { echo "crash-actions-test.sh: curl is required" >&2; exit 2; }
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
    echo "crash-actions-test.sh: logs and data kept in $work" >&2
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
echo "crash-actions-test.sh: ClickHouse at $CH" >&2
go build -o "$work/crashtest" ./cmd/crashtest

sim_port=$(free_port)
api_port=$(free_port)
SIM=http://127.0.0.1:$sim_port
API=http://127.0.0.1:$api_port

# Every answer to the organisation 50 ms late, and an answer to a write another 150 ms after the
# write is done: kills land before a write is applied and after it is applied but unanswered.
"$work/crashtest" -sim -sim-latency 50ms -sim-write-delay 150ms -addr "127.0.0.1:$sim_port" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do grep -q ready "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/sim.out" || { echo "crash-actions-test.sh: simulator did not start" >&2; cat "$work/sim.log" >&2; exit 1; }
curl -sSf "$SIM/reclaim/$ORG" >"$work/reclaim.json"

start_collector() {
  "$work/crashtest" -addr "127.0.0.1:$api_port" -data-dir "$work/data" -action-chunk 2 -action-every 400ms \
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
    kill -0 "$col_pid" 2>/dev/null || { echo "crash-actions-test.sh: the collector exited; see $work/collector.log" >&2; return 1; }
    sleep 0.1
  done
  echo "crash-actions-test.sh: the collector's API did not answer within 60 s" >&2
  return 1
}

api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
writes() { curl -sSf "$SIM/writes/$ORG" | tr ',' '\n' | grep -c deactivate || true; }
post_action() { api -o "$work/post.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @"$work/reclaim.json" "$API/v1/tenants/$ORG/actions"; }

# Connect the organisation, let its first sync finish, and accept the action.
start_collector
wait_healthy
code=$(curl -sSf "$SIM/connect/$ORG" | api -o "$work/connect.json" -w '%{http_code}' -X PUT \
  -H 'Content-Type: application/json' --data-binary @- "$API/v1/tenants/$ORG/connections/greenhouse")
[ "$code" = 200 ] || { echo "crash-actions-test.sh: connecting $ORG answered $code: $(cat "$work/connect.json")" >&2; exit 1; }
for _ in $(seq 1 600); do
  api "$API/v1/tenants/$ORG/connections/greenhouse" | grep -q '"audit_synced_through": "' && break
  sleep 0.2
done
code=$(post_action)
[ "$code" = 202 ] || { echo "crash-actions-test.sh: the action answered $code: $(cat "$work/post.json")" >&2; exit 1; }
action_id=$(sed -n 's/.*"action_id": *"\([^"]*\)".*/\1/p' "$work/post.json")
kill_collector
echo "crash-actions-test.sh: action $action_id of $(sed -n 's/.*"user_ids":\[\([^]]*\)\].*/\1/p' "$work/reclaim.json" | tr ',' '\n' | wc -l) users accepted" >&2

# The kill loop. A kill counts as mid-action when the simulator accepted a write in the 300 ms
# before it. Each start posts the same action again: the same idempotency key, one action.
midaction=0
exited=0
for i in $(seq 1 "$N"); do
  start_collector
  ( wait_healthy >/dev/null 2>&1 && post_action >/dev/null 2>&1 || true ) &
  req_pid=$!
  ms=$((700 + RANDOM % 2500))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  if ! kill -0 "$col_pid" 2>/dev/null; then
    exited=$((exited + 1))
    echo "crash-actions-test.sh: run $i: the collector had exited by itself before the kill" >&2
  fi
  w1=$(writes)
  sleep 0.3
  w2=$(writes)
  kill_collector
  wait "$req_pid" 2>/dev/null || true
  busy=
  if [ "$w2" -gt "$w1" ]; then midaction=$((midaction + 1)); busy=" (mid-action)"; fi
  echo "crash-actions-test.sh: kill $i/$N after $((ms + 300)) ms, $w2 deactivations so far$busy" >&2
done

# The final run finishes the action.
start_collector
wait_healthy
post_action >/dev/null
deadline=$(( $(date +%s) + FINAL_TIMEOUT ))
until api "$API/v1/tenants/$ORG/actions/$action_id" >"$work/action.json" && grep -q '"status": "completed"' "$work/action.json" \
  && ! grep -q '"outcome": "pending"' "$work/action.json"; do
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "crash-actions-test.sh: the action did not complete within ${FINAL_TIMEOUT} s" >&2
    exit 1
  fi
  sleep 0.5
done
# Its users sync and recording are done once the connection no longer lists it; then stop.
sleep 2
kill -TERM "$col_pid"
wait "$col_pid" || { echo "crash-actions-test.sh: the final collector did not stop cleanly" >&2; exit 1; }
col_pid=

echo
landed=$(grep -c "request took effect" "$work/collector.log" || true)
resent=$(grep -c "request did not take effect" "$work/collector.log" || true)
echo "crash-actions-test.sh: $N kills, $midaction while deactivations were being sent, $exited runs ended by themselves;" \
  "users left marked sending by a kill: $landed found done (not sent again), $resent found not done (sent)"
if [ "$midaction" -eq 0 ] || [ "$exited" -gt 0 ]; then
  echo "crash-actions-test.sh: FAIL: want at least one kill while the action sent requests, and no run ending by itself"
  exit 1
fi
if "$work/crashtest" -verify-actions -action-file "$work/action.json" -sim-url "$SIM" -data-dir "$work/data" \
  -clickhouse-addr "$CH" -clickhouse-database crashtest; then
  status=0
  echo "crash-actions-test.sh: PASS: $N kills survived"
else
  echo "crash-actions-test.sh: FAIL"
fi
exit "$status"
