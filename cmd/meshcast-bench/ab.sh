#!/usr/bin/env bash
# A/B of two revisions of meshcast on this machine, alternated (A B A B ...),
# with one load tool (built from the working tree): the fair way to say
# whether a change made fan-out faster or slower, since the same code
# measures differently from one day (or VM host) to another.
#
#   cmd/meshcast-bench/ab.sh REV_A REV_B            # 1 and 3 nodes, 2 rounds
#   NODES=1 ROUNDS=3 STEP=10s cmd/meshcast-bench/ab.sh 358b802 HEAD
#
# Each run is a fan-out ramp: 3,000 subscribers (spread over the nodes), 3
# publishers, 100-byte payloads, rates growing 25% a step until a step
# loses a message or its p99 exceeds 250 ms. It prints, per run, the
# highest rate that passed and the p50/p99 of that step; raw outputs go to
# cmd/meshcast-bench/results/ab-<date>-*.txt.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
A=${1:?usage: ab.sh REV_A REV_B}
B=${2:?usage: ab.sh REV_A REV_B}
NODES=${NODES:-"1 3"}
ROUNDS=${ROUNDS:-2}
STEP=${STEP:-10s}
START1=${START1:-300} # first rate, 1 node
START3=${START3:-150} # first rate, 3 nodes
BASE=${BASE_PORT:-29080}
RESULTS=${RESULTS:-$HERE/results}
DATE=$(date -u +%Y-%m-%dT%H%M)
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	trap - EXIT
	down
	for rev in a b; do
		[ -d "$TMP/src-$rev" ] && git -C "$ROOT" worktree remove --force "$TMP/src-$rev" >/dev/null 2>&1 || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

build() { # label rev
	git -C "$ROOT" worktree add --detach -q "$TMP/src-$1" "$2"
	(cd "$TMP/src-$1" && go build -o "$TMP/$1/meshcast" ./cmd/meshcast)
}
echo "building A=$A B=$B and the load tool" >&2
build a "$A"
build b "$B"
(cd "$ROOT" && go build -o "$TMP/bench" ./cmd/meshcast-bench)
mkdir -p "$RESULTS"

# shellcheck source=nodes.sh
. "$HERE/nodes.sh"

up() { nodes_up "$TMP/$1/meshcast" "$2" ab --log-level error --insecure; } # label nodes

down() { nodes_down; }

for n in $NODES; do
	urls=$(for ((i = 0; i < n; i++)); do printf 'ws://127.0.0.1:%d/ws,' $((BASE + i)); done)
	start=$START1
	((n > 1)) && start=$START3
	for ((r = 1; r <= ROUNDS; r++)); do
		for label in a b; do
			rev=$A
			[ $label = b ] && rev=$B
			up $label "$n"
			out="$RESULTS/ab-$DATE-${n}node-$label$r.txt"
			"$TMP/bench" fanout --urls "${urls%,}" --subs 3000 --pubs 3 --size 100 --duration "$STEP" \
				--ramp --rate "$start" --quiet >"$out" 2>&1 || true
			down
			best=$(grep -o 'best rate with no loss and p99 <= [0-9]*ms: [0-9]* publishes/s' "$out" | grep -o '[0-9]* publishes/s' || echo "? publishes/s")
			rate=${best%% *}
			line=$(awk -v r="$rate" '$1 ~ /^[0-9]+$/ && $2 == r && $17 == "yes" {print "p50 " $11 " ms, p99 " $13 " ms"; exit}' "$out")
			echo "${n} node(s), round $r, $label ($rev): $best, $line"
		done
	done
done
