#!/usr/bin/env bash
# compat-test.sh: the ClickHouse compatibility test (docs/schema.md, "18.16 and current
# releases"): every migration and every query of package storage, with representative data,
# on ClickHouse 18.16 (Debian's server, started here) and on a current release in process
# (chdb: libchdb.so from the npm package @chdb/lib-linux-x64-gnu, bound by chdb-go without
# cgo), results compared row by row. Both run in the Asia/Kolkata time zone, which the
# schema's DateTime('UTC') columns must not feel.
#
#   deploy/local/compat-test.sh [go test flags]
#
# The npm package (about 560 MB) is installed once into CHDB_CACHE (default
# ~/.cache/greenhouse-collector/chdb-VERSION); CHDB_VERSION picks it (default 26.5.3).
set -euo pipefail
cd "$(dirname "$0")/../.."

CHDB_VERSION=${CHDB_VERSION:-26.5.3}
cache=${CHDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/greenhouse-collector/chdb-$CHDB_VERSION}
lib=$cache/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so
if [ ! -s "$lib" ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    echo "compat-test.sh: installing Debian's npm" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >&2
  fi
  echo "compat-test.sh: installing @chdb/lib-linux-x64-gnu@$CHDB_VERSION into $cache" >&2
  mkdir -p "$cache"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >&2
fi
[ -s "$lib" ] || { echo "compat-test.sh: $lib missing after npm install" >&2; exit 1; }

deploy/local/clickhouse.sh install
work=$(mktemp -d)
trap 'deploy/local/clickhouse.sh stop "$work/clickhouse"; rm -rf "$work"' EXIT
export TZ=Asia/Kolkata
CLICKHOUSE_ADDR=$(deploy/local/clickhouse.sh start "$work/clickhouse")
echo "compat-test.sh: ClickHouse 18.16 at $CLICKHOUSE_ADDR, chdb $CHDB_VERSION from $lib" >&2
CLICKHOUSE_ADDR=$CLICKHOUSE_ADDR CHDB_LIB_PATH=$lib go test -tags chdb -count=1 -run 'TestCompatibility' "$@" ./storage/
