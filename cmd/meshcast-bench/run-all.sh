#!/usr/bin/env bash
# Runs every figure BENCHMARKS.md needs and prints the tables; raw outputs
# go to cmd/meshcast-bench/results/<scenario>-<date>.txt (and .json).
#
#   cmd/meshcast-bench/run-all.sh            # everything (about an hour on 2 cores)
#   ONLY="issue2 issue3" cmd/meshcast-bench/run-all.sh
#   STEP=10s ROUNDS=1 cmd/meshcast-bench/run-all.sh   # quicker, less precise
#
# Parts: issue2 (one node: idle RSS at 15,000 conns; fan-out ramps at 3,000
# and 10,000 subscribers), issue3 (3 nodes: fan-out ramp; cross-node extra
# p99), issue4 (meshcast-bench compare against Socket.IO + Redis and
# Centrifugo: needs node/npm and go, installs the peers on first use via
# peer/peer.sh and peer/centrifugo.sh), issue11 (history:
# 3-node fan-out ramps without and with history, alternated; publish-to-ack
# latency; 1,000 clients of a killed node recovering; RSS per stored message),
# issue15 (burst latency: 3 nodes, 3,000 subscribers, fixed rates 1, 7 and
# RATE10 publishes/s, 30 s each, the load tool's uring reader; latency.sh).
# Every process it starts is stopped at the end (trap), and every bench run
# has its own hard timeout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RESULTS=${RESULTS:-$HERE/results}
ONLY=${ONLY:-"issue2 issue3 issue4 issue11 issue15"}
STEP=${STEP:-20s}           # issue 2/3 ramp step (the issues ask for 20 s)
ROUNDS=${ROUNDS:-2}         # compare rounds (A B A B)
BASE=${BASE_PORT:-28080}    # meshcast node i: HTTP BASE+i, gossip BASE+100+2i, peer BASE+101+2i
START2=${START2:-40}        # first ramp rate, issue 2 (publishes/s)
START3=${START3:-40}        # first ramp rate, issue 3
XRATE=${XRATE:-50}          # fixed rate of the cross-node latency runs
RATE10=${RATE10:-37}        # issue 15: 10% of the highest 3-node rate (368/s on 2026-12-04)
DATE=$(date -u +%Y-%m-%dT%H%M)
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	mesh_down
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building meshcast and meshcast-bench ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo no-git))" >&2
(cd "$ROOT" && go build -o "$TMP/meshcast" ./cmd/meshcast && go build -o "$TMP/meshcast-bench" ./cmd/meshcast-bench)
BENCH=$TMP/meshcast-bench
mkdir -p "$RESULTS"

# shellcheck source=nodes.sh
. "$HERE/nodes.sh"

mesh_up() { nodes_up "$TMP/meshcast" "$1" bench --log-level warn ${MESH_EXTRA:-}; } # nodes

mesh_down() { nodes_down; }

url() { echo "ws://127.0.0.1:$((BASE + $1))/ws"; }

# run NAME CMD...: runs a bench command, keeps its table, prints it.
run() {
	local name=$1
	shift
	local out="$RESULTS/$name-$DATE.txt"
	echo "== $name: $*" | sed "s#$TMP/##g" | tee "$out"
	"$@" 2>"$TMP/$name.err" | tee -a "$out" || echo "($name failed: $(tail -1 "$TMP/$name.err"))" | tee -a "$out"
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
	echo
}

if [[ " $ONLY " == *" issue2 "* ]]; then
	mesh_up 1
	run idle-1node-15000 "$BENCH" idle --urls "$(url 0)" --conns 15000 --pids "${PIDS[0]}" \
		--stats-urls "http://127.0.0.1:$BASE/api/stats" --quiet
	mesh_down
	mesh_up 1
	run fanout-1node-3000subs "$BENCH" fanout --urls "$(url 0)" --subs 3000 --pubs 3 --size 100 \
		--duration "$STEP" --ramp --rate "$START2" --quiet
	mesh_down
	mesh_up 1
	run fanout-1node-10000subs "$BENCH" fanout --urls "$(url 0)" --subs 10000 --pubs 3 --size 100 \
		--duration "$STEP" --ramp --rate "$START2" --per-worker 2500 --quiet
	mesh_down
fi

if [[ " $ONLY " == *" issue3 "* ]]; then
	mesh_up 3
	run fanout-3node-3000subs "$BENCH" fanout --urls "$(url 0),$(url 1),$(url 2)" --subs 3000 --pubs 3 \
		--size 100 --duration "$STEP" --ramp --rate "$START3" --quiet
	mesh_down
	# Cross-node extra latency: the same 3,000 subscribers on node 1, the
	# publisher either on node 1 too (local delivery) or on node 0 (one peer
	# hop); only the hop differs between the two runs.
	mesh_up 3
	run fanout-3node-local "$BENCH" fanout --urls "$(url 1)" --pub-urls "$(url 1)" --subs 3000 --pubs 1 \
		--size 100 --duration "$STEP" --rate "$XRATE" --quiet
	run fanout-3node-remote "$BENCH" fanout --urls "$(url 1)" --pub-urls "$(url 0)" --subs 3000 --pubs 1 \
		--size 100 --duration "$STEP" --rate "$XRATE" --quiet
	mesh_down
fi

if [[ " $ONLY " == *" issue4 "* ]]; then
	run compare "$BENCH" compare --meshcast-bin "$TMP/meshcast" --peer-script "$HERE/peer/peer.sh" \
		--centrifugo-script "$HERE/peer/centrifugo.sh" --systems meshcast,socketio,centrifugo \
		--meshcast-port "$BASE" --rounds "$ROUNDS" --out "$RESULTS" --quiet
fi
if [[ " $ONLY " == *" issue11 "* ]]; then
	# Fan-out with history on (every publish stored, and held by 2 nodes
	# before its ack) against the same without, on the same cluster,
	# alternated: plain, history, plain, history.
	MESH_EXTRA="--namespace bench:history=1000"
	mesh_up 3
	for round in 1 2; do
		run "fanout-3node-plain-r$round" "$BENCH" fanout --urls "$(url 0),$(url 1),$(url 2)" --subs 3000 --pubs 3 \
			--size 100 --duration "$STEP" --ramp --rate "$START3" --channel plain --quiet
		run "fanout-3node-history-r$round" "$BENCH" fanout --urls "$(url 0),$(url 1),$(url 2)" --subs 3000 --pubs 3 \
			--size 100 --duration "$STEP" --ramp --rate "$START3" --channel bench:fan --quiet
	done
	mesh_down
	MESH_EXTRA=""
	run history "$BENCH" history --meshcast-bin "$TMP/meshcast" --base-port $((BASE + 300)) --quiet
fi
if [[ " $ONLY " == *" issue15 "* ]]; then
	MESHCAST="$TMP/meshcast" BENCH="$BENCH" RESULTS="$RESULTS" READER=uring RATES="1 7 $RATE10" LABEL=issue15 \
		BASE_PORT=$((BASE + 500)) "$HERE/latency.sh"
fi
echo "results in $RESULTS (*-$DATE.*)"
