#!/usr/bin/env bash
# demo.sh: the local demo on a fresh Debian machine with Go installed. It installs Debian's
# ClickHouse when missing, starts a throwaway server, and runs cmd/demo: a Greenhouse simulator
# with a few tenants, the collector with embedded NATS, the tenants connected through the HTTP
# API, and a summary of what landed in ClickHouse and NATS. Ctrl-C stops everything.
# Extra arguments go to cmd/demo (e.g. -v for the collector's logs, -http-addr).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v go >/dev/null 2>&1; then
  echo "demo.sh: Go 1.26 or newer is required (https://go.dev/doc/install)" >&2
  exit 1
fi
deploy/local/clickhouse.sh install

work=$(mktemp -d)
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ]; then kill -TERM "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  deploy/local/clickhouse.sh stop "$work/clickhouse"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "==> starting ClickHouse" >&2
CLICKHOUSE_ADDR=$(deploy/local/clickhouse.sh start "$work/clickhouse")
echo "==> ClickHouse at $CLICKHOUSE_ADDR; building the demo" >&2
go build -o "$work/demo" ./cmd/demo
"$work/demo" -clickhouse "$CLICKHOUSE_ADDR" -data-dir "$work/data" "$@" &
demo_pid=$!
wait "$demo_pid"
status=$?
demo_pid=
exit "$status"
