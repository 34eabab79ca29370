#!/usr/bin/env bash
# clickhouse.sh: install (when missing) and run a throwaway ClickHouse for tests and the demo.
#
#   deploy/local/clickhouse.sh install        install Debian's clickhouse-server if absent
#   deploy/local/clickhouse.sh start DIR      start a server with its data in DIR on free ports;
#                                             prints the native address (host:port) on stdout
#   deploy/local/clickhouse.sh stop DIR       stop the server started in DIR
#
# CH_QUERY_LOG=1 makes the server log every query to system.query_log and every part written
# or merged to system.part_log (scale-test.sh's cost per query and merges per table); off by
# default, since the log costs the server work of its own.
set -euo pipefail

find_server() {
  for b in clickhouse-server /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  if command -v clickhouse >/dev/null 2>&1; then echo "$(command -v clickhouse) server"; return 0; fi
  return 1
}

install() {
  if find_server >/dev/null; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "clickhouse.sh: installing Debian's clickhouse-server and clickhouse-client" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >&2
}

free_port() {
  python3 - <<'PY' 2>/dev/null || shuf -i 20000-60000 -n 1
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

start() {
  local dir=$1
  mkdir -p "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  dir=$(cd "$dir" && pwd)
  local tcp http
  tcp=$(free_port); http=$(free_port)
  while [ "$http" = "$tcp" ]; do http=$(free_port); done
  local query_log= log_queries=
  if [ "${CH_QUERY_LOG:-0}" = 1 ]; then
    query_log='    <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>7500</flush_interval_milliseconds></query_log>
    <part_log><database>system</database><table>part_log</table><flush_interval_milliseconds>7500</flush_interval_milliseconds></part_log>'
    log_queries='<log_queries>1</log_queries>'
  fi
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/server.err.log</errorlog></logger>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>536870912</mark_cache_size>
    <max_concurrent_queries>200</max_concurrent_queries>
$query_log
</yandex>
XML
  # No experimental settings: the schema needs none (docs/schema.md), and a current release
  # refuses a profile naming a setting it no longer knows (code 115, UNKNOWN_SETTING), as
  # 26.x does allow_experimental_low_cardinality_type, which this profile used to set.
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage>$log_queries</default></profiles>
    <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  local server
  server=$(find_server) || { echo "clickhouse.sh: clickhouse-server not installed (run: $0 install)" >&2; exit 1; }
  # shellcheck disable=SC2086
  nohup $server --config-file="$dir/config.xml" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null; then
      echo "127.0.0.1:$tcp"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "clickhouse.sh: server did not start; last log lines:" >&2
  tail -n 20 "$dir/stdout.log" "$dir/server.err.log" >&2 2>/dev/null || true
  exit 1
}

stop() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  install) install ;;
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
