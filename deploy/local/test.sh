#!/usr/bin/env bash
# test.sh: runs the whole test suite on a fresh Debian machine with Go installed.
# It installs Debian's ClickHouse when it is missing, starts a throwaway server for the run
# (NATS is embedded in the tests), runs go vet and every test, and cleans up. Then, unless
# arguments were given, the ClickHouse compatibility test (18.16 against 26.x in process,
# docs/schema.md) and the short JetStream cluster run (three replicas, three NATS nodes,
# faults; docs/reliability.md), each with servers of its own.
# Extra arguments go to `go test` (e.g. -run TestEndToEnd).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go 1.26 or newer is required (https://go.dev/doc/install)" >&2
  exit 1
fi
deploy/local/clickhouse.sh install

work=$(mktemp -d)
trap 'deploy/local/clickhouse.sh stop "$work/clickhouse"; rm -rf "$work"' EXIT
CLICKHOUSE_ADDR=$(deploy/local/clickhouse.sh start "$work/clickhouse")
export CLICKHOUSE_ADDR
echo "test.sh: ClickHouse at $CLICKHOUSE_ADDR" >&2

go vet ./...
# Everything against the simulator's documented profile (Greenhouse as its docs show it), then
# the connector and end-to-end tests again against the generous one (every rate-limit header on
# every answer): docs/greenhouse-wire.md, "Simulator profiles".
GREENHOUSE_SIM_PROFILE=documented go test -count=1 -timeout 45m "$@" ./...
GREENHOUSE_SIM_PROFILE=generous go test -count=1 -timeout 45m "$@" ./connectors/... ./collector/
if [ $# -eq 0 ]; then
  deploy/local/compat-test.sh
  deploy/local/cluster-test.sh --short
fi
