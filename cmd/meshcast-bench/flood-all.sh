#!/usr/bin/env bash
# Runs every attack of "meshcast-bench flood" against a meshcast binary and
# writes one file per attack to $RESULTS (default cmd/meshcast-bench/results):
#   flood-<attack>-<LABEL>.txt
# Usage: [BIN=path/to/meshcast] [LABEL=after] [DURATION=20s] [ONLY="peer-slots ..."] flood-all.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${RESULTS:-$ROOT/cmd/meshcast-bench/results}
LABEL=${LABEL:-after}
DURATION=${DURATION:-20s}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -z "${BIN:-}" ]; then
	(cd "$ROOT" && go build -o "$TMP/meshcast" ./cmd/meshcast)
	BIN=$TMP/meshcast
fi
(cd "$ROOT" && go build -o "$TMP/bench" ./cmd/meshcast-bench)
mkdir -p "$RESULTS"
ATTACKS=${ONLY:-peer-slots peer-junk gossip-udp gossip-stream http-idle http-header http-body}
for a in $ATTACKS; do
	out="$RESULTS/flood-$a-$LABEL.txt"
	echo "== $a ($LABEL) -> $out" >&2
	{
		echo "# $TMP/bench flood --meshcast-bin $BIN --attack $a --duration $DURATION  ($(date -u +%FT%TZ))"
		"$TMP/bench" flood --meshcast-bin "$BIN" --attack "$a" --duration "$DURATION" 2>/dev/null ||
			echo "# the run failed with status $?"
		echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$out"
	tail -2 "$out" >&2
done
