#!/usr/bin/env bash
# Burst latency (issue 15): 3 nodes, 3,000 subscribers of one channel spread
# over them, 3 publishers (one per node), 100-byte payloads, fixed rates
# (default 1 and 7 publishes/s and 10% of the highest 3-node rate), each run
# DURATION long on a fresh cluster. Each run reports p50/p99 and the CPU per
# delivery of the load tool's workers and of the nodes (--server-pids).
#
#   cmd/meshcast-bench/latency.sh                      # builds both from the working tree
#   MESHCAST=/tmp/mc BENCH=/tmp/mb RATES="1 7 37" READER=uring cmd/meshcast-bench/latency.sh
#   ... READER=uring ARRIVAL=kernel READER_IDLE=1 cmd/meshcast-bench/latency.sh   # the nodes' part alone
#
# Raw outputs: $RESULTS/latency-<label>-<rate>-<date>.txt; one summary line
# per run on stdout, with the latency of subscribers on their publisher's
# node and on the other two (the publish crossed a peer link) beside it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RESULTS=${RESULTS:-$HERE/results}
RATES=${RATES:-"1 7 37"}   # 37: 10% of the highest 3-node rate measured on 2026-12-04 (368/s)
DURATION=${DURATION:-30s}
READER=${READER:-}        # load tool's reader (--reader), empty: its default
ARRIVAL=${ARRIVAL:-}      # --arrival: kernel (latency ends at the kernel's receive timestamp), empty: read
READER_IDLE=${READER_IDLE:-} # 1: --reader-idle, the load tool reads only when no node wants a core (its clients stand in for other machines)
LABEL=${LABEL:-run}
BASE=${BASE_PORT:-27080}  # node i: HTTP BASE+i, gossip BASE+100+2i, peer BASE+101+2i
DATE=$(date -u +%Y-%m-%dT%H%M)
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	trap - EXIT
	down
	rm -rf "$TMP"
}
trap cleanup EXIT

if [ -z "${MESHCAST:-}" ] || [ -z "${BENCH:-}" ]; then
	(cd "$ROOT" && go build -o "$TMP/meshcast" ./cmd/meshcast && go build -o "$TMP/meshcast-bench" ./cmd/meshcast-bench)
	MESHCAST=${MESHCAST:-$TMP/meshcast}
	BENCH=${BENCH:-$TMP/meshcast-bench}
fi
mkdir -p "$RESULTS"
# shellcheck source=nodes.sh
. "$HERE/nodes.sh"

up() { nodes_up "$MESHCAST" 3 lat --log-level error --insecure; }

down() { nodes_down; }

urls="ws://127.0.0.1:$BASE/ws,ws://127.0.0.1:$((BASE + 1))/ws,ws://127.0.0.1:$((BASE + 2))/ws"
reader=()
[ -n "$READER" ] && reader=(--reader "$READER")
[ -n "$ARRIVAL" ] && reader+=(--arrival "$ARRIVAL")
[ "$READER_IDLE" = 1 ] && reader+=(--reader-idle)
for rate in $RATES; do
	up
	out="$RESULTS/latency-$LABEL-${rate}ps-$DATE.txt"
	pids=$(IFS=,; echo "${PIDS[*]}")
	cmd=("$BENCH" fanout --urls "$urls" --subs 3000 --pubs 3 --size 100 --rate "$rate" --duration "$DURATION" \
		--server-pids "$pids" "${reader[@]}" --quiet)
	echo "== ${cmd[*]}" | sed "s#$TMP/##g" >"$out"
	"${cmd[@]}" >>"$out" 2>&1 || echo "(run failed)" >>"$out"
	echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"
	down
	row=$(awk '$1 == "1" && $2 ~ /^[0-9]+$/ {print "p50 " $11 " ms, p90 " $12 " ms, p99 " $13 " ms, max " $14 " ms, lost " $8 ", ok " $17; exit}' "$out")
	cpu=$(grep -o 'load tool [0-9.]* µs, servers [0-9.]* µs' "$out" || true)
	read=$(grep -o 'at the load tool.s read: .*max [0-9.]* ms' "$out" | sed 's/.*read: /; read by the tool: /' || true)
	read+=$(grep -o '[0-9]* read together' "$out" | sed 's/^/, /' || true)
	nodes=$(sed -n "s/.*subscribers on the publisher's node: [0-9]* deliveries, \(p50 [0-9.]* ms, p99 [0-9.]* ms\).*on other nodes: [0-9]*, \(p50 [0-9.]* ms, p99 [0-9.]* ms\).*/; publisher's node \1, other nodes \2/p" "$out")
	echo "$LABEL ${rate}/s: $row$read$nodes; CPU per delivery: $cpu; $(tail -1 "$out")"
done
