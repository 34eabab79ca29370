#!/usr/bin/env bash
# compare.sh: the storage benchmarks quoted in docs/schema.md ("Performance").
#
#   storage/bench/compare.sh [insert|queries|read|all]
#
# Starts a throwaway ClickHouse (deploy/local/clickhouse.sh) unless CLICKHOUSE_ADDR is set, then
#   insert:  BenchmarkInsertVsClient: BENCH_ROWS (1,000,000) audit events, BENCH_REPS (5) times
#            each with InsertAuditEvents and with clickhouse-client (JSONEachRow and Native), into
#            an empty table every time; medians and ratios of the rates.
#   queries: BenchmarkDashboardQueries: a tenant with 10,000 users and 10,000,000 audit events
#            plus 4 other tenants (2,000 users, 500,000 events each); median latency per query.
#   read:    BenchmarkReadAPIQueries: the read API's queries on the same fixture (list pages,
#            a user's detail, trends); median and 95th percentile per answer.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}

if [ -z "${CLICKHOUSE_ADDR:-}" ]; then
  work=$(mktemp -d)
  trap 'deploy/local/clickhouse.sh stop "$work"; rm -rf "$work"' EXIT
  CLICKHOUSE_ADDR=$(deploy/local/clickhouse.sh start "$work")
  export CLICKHOUSE_ADDR
fi
echo "compare.sh: ClickHouse at $CLICKHOUSE_ADDR ($(clickhouse-client --host "${CLICKHOUSE_ADDR%:*}" --port "${CLICKHOUSE_ADDR##*:}" --query 'SELECT version()'))" >&2

case "$what" in
  insert|all) go test ./storage/ -run '^$' -bench 'InsertVsClient' -benchtime 1x -count 1 -timeout 60m ;;&
  queries|all) go test ./storage/ -run '^$' -bench 'DashboardQueries' -benchtime 20x -count 1 -timeout 60m ;;&
  read|all) go test ./storage/ -run '^$' -bench 'ReadAPIQueries' -benchtime 50x -count 1 -timeout 60m ;;
  insert|queries) ;;
  *) echo "usage: $0 [insert|queries|read|all]" >&2; exit 2 ;;
esac
