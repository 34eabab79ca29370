#!/usr/bin/env bash
# Compare the events publisher with `nats bench js pub async` on the same server.
#
# Usage: events/bench/compare.sh [SIZE...]        (default sizes: 512 1024 bytes per message)
# Env:   MSGS (100000 per run), REPS (5), BATCH (500), NATSCLI_VERSION (v0.5.1),
#        NATS_URL (a running server or cluster to use instead of starting one), REPLICAS (1;
#        3 against a 3-node cluster: deploy/local/cluster-test.sh runs it so)
#
# One embedded server (events.StartEmbedded: JetStream, file storage, fresh store directory),
# or the one at NATS_URL, serves both publishers, with REPLICAS stream replicas. For each
# repetition and size it runs, one after the other:
#   nats bench js pub async   (natscli via `go run …@version`, JetStream acks, --dedup so every
#                              message carries a Nats-Msg-Id, file storage, stream purged)
#   events/bench/pub          (Bus.Publish: Nats-Msg-Id, acks awaited, same message size: the
#                              whole CloudEvents envelope is exactly SIZE bytes, stream purged)
# and prints each rate, then the medians and the ratio ours/nats per size.
set -euo pipefail

cd "$(dirname "$0")/../.."
msgs=${MSGS:-100000}
reps=${REPS:-5}
batch=${BATCH:-500}
natscli=${NATSCLI_VERSION:-v0.5.1}
replicas=${REPLICAS:-1}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(512 1024)

work=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "building the server and our publisher; fetching natscli $natscli" >&2
go build -o "$work/server" ./events/bench/server
go build -o "$work/pub" ./events/bench/pub
nats() { go run "github.com/nats-io/natscli/nats@$natscli" "$@"; }
nats --version >/dev/null

if [ -n "${NATS_URL:-}" ]; then
	url=$NATS_URL
else
	mkdir "$work/store"
	"$work/server" -dir "$work/store" >"$work/url" 2>"$work/server.log" &
	server_pid=$!
	for _ in $(seq 100); do
		[ -s "$work/url" ] && break
		sleep 0.1
	done
	url=$(head -n1 "$work/url")
	[ -n "$url" ] || { echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
fi
echo "server $url, $msgs messages per run, $reps repetitions, sizes ${sizes[*]}, $replicas replicas" >&2

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.0f\n", (v[NR/2]+v[NR/2+1])/2}'; }

for size in "${sizes[@]}"; do
	: >"$work/nats.$size"
	: >"$work/ours.$size"
done
for rep in $(seq "$reps"); do
	for size in "${sizes[@]}"; do
		rm -f "$work/bench.csv"
		nats -s "$url" bench js pub async benchsubject --create --purge --dedup --storage file --replicas "$replicas" \
			--batch "$batch" --msgs "$msgs" --size "$size" --no-progress --csv "$work/bench.csv" >/dev/null 2>&1
		n=$(awk -F, 'NR==2 {printf "%.0f\n", $5}' "$work/bench.csv")
		o=$("$work/pub" -url "$url" -msgs "$msgs" -size "$size" -replicas "$replicas" | sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p')
		echo "$n" >>"$work/nats.$size"
		echo "$o" >>"$work/ours.$size"
		printf 'rep %d size %5d B: nats bench %7d msgs/s, events publisher %7d msgs/s\n' "$rep" "$size" "$n" "$o"
	done
done

echo
printf '%-8s %16s %16s %8s\n' size "nats bench" "events" ratio
for size in "${sizes[@]}"; do
	n=$(median <"$work/nats.$size")
	o=$(median <"$work/ours.$size")
	printf '%-8s %11s msg/s %11s msg/s %8.2f\n' "${size}B" "$n" "$o" "$(awk -v o="$o" -v n="$n" 'BEGIN {print o/n}')"
done
