#!/usr/bin/env bash
# CPU per delivery of the load tool and of the server: one node, 3,000
# subscribers of one channel, 3 publishers, RATE publishes/s for 30 s.
# The load tool's CPU is its own and its workers' (bash's `time` counts
# waited-for descendants); the server's is from /proc/PID/stat. Both include
# the 3,000 connects (well under a second).
#
#   MC=/tmp/mc MB=/tmp/mb cmd/meshcast-bench/cpu-per-delivery.sh meshcast|centrifugo RATE
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MC=${MC:-/tmp/mc} MB=${MB:-/tmp/mb}
sys=$1 rate=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
tick=$(getconf CLK_TCK)
if [ "$sys" = meshcast ]; then
	MESHCAST_SECRET=$(head -c 32 /dev/urandom | base64) "$MC" --listen 127.0.0.1:28080 --log-level warn &
	spid=$!
	url=ws://127.0.0.1:28080/ws proto=v1
	for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:28080/readyz 2>/dev/null && break; sleep 0.1; done
else
	CF_PORTS=8101 bash "$HERE/peer/centrifugo.sh" up > "$TMP/up.txt" 2>/dev/null &
	upid=$!
	for _ in $(seq 100); do grep -q "peer ready" "$TMP/up.txt" && break; sleep 0.1; done
	spid=$(grep PEER_PIDS "$TMP/up.txt" | cut -d= -f2)
	url=ws://127.0.0.1:8101/connection/websocket proto=centrifugo
fi
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
s0=$(ticks $spid)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
TIMEFORMAT="client cpu: user %U s, sys %S s, wall %R s"
{ time "$MB" fanout --proto $proto --urls $url --subs 3000 --pubs 3 --size 100 --rate $rate --duration 30s --quiet ; } 2>&1
s1=$(ticks $spid)
echo "server cpu: $(( (s1 - s0) ))/$tick s (process $spid)"
echo "load before $load0, after $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$sys" = meshcast ]; then kill $spid; wait $spid || true; else kill $upid; wait $upid || true; fi
