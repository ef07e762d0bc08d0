#!/usr/bin/env bash
# Where one node's writes of each fan-out burst happen (issue 15): 3 nodes
# (--pprof), 3,000 subscribers, 7 publishes/s with the epoll reader; a 3 s Go
# execution trace of node 0, then, per burst (writes closer than 2 ms), the
# number of write system calls on each P (a write(2) per connection, or one
# io_uring_enter per chunk of 16 with io_uring) and the first and last of them, counted from
# the first event (the writers' wake-up by Server.Burst, or a first write).
#
#   go build -o /tmp/mc ./cmd/meshcast && go build -o /tmp/mb ./cmd/meshcast-bench
#   cmd/meshcast-bench/burst-trace.sh /tmp/mc /tmp/mb > summary.txt   # needs python3
set -euo pipefail
MC=${1:?usage: burst-trace.sh MESHCAST BENCH}
MB=${2:?usage: burst-trace.sh MESHCAST BENCH}
BASE=${BASE_PORT:-27680}
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait; rm -rf "$TMP"' EXIT
# shellcheck source=nodes.sh
. "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"
nodes_up "$MC" 3 t --log-level error --insecure --pprof
"$MB" fanout --urls "ws://127.0.0.1:$BASE/ws,ws://127.0.0.1:$((BASE + 1))/ws,ws://127.0.0.1:$((BASE + 2))/ws" --subs 3000 --pubs 3 \
	--size 100 --duration 12s --rate 7 --reader epoll --quiet >"$TMP/run.txt" 2>&1 &
BP=$!
sleep 7
curl -fsS -o "$TMP/node0.trace" "http://127.0.0.1:$BASE/debug/pprof/trace?seconds=3"
wait $BP || true
go tool trace -d=parsed "$TMP/node0.trace" >"$TMP/parsed.txt"
python3 - "$TMP/parsed.txt" <<'PY'
import re, sys, collections
lines = open(sys.argv[1]).read().split('\n')
ev = []  # (time, P, kind)
i = 0
hdr = re.compile(r'^M=(-?\d+) P=(-?\d+) G=(-?\d+) (\w+) Time=(\d+)(.*)$')
while i < len(lines):
    m = hdr.match(lines[i])
    if not m:
        i += 1; continue
    p, kind, t, rest = int(m.group(2)), m.group(4), int(m.group(5)), m.group(6)
    j = i + 1
    stack = []
    while j < len(lines) and not hdr.match(lines[j]):
        stack.append(lines[j]); j += 1
    st = '\n'.join(stack)
    if kind == 'StateTransition' and 'Running->Syscall' in rest:
        if 'writeClaimed' in st: ev.append((t, p, 'claimed'))
        elif 'flushOnce' in st: ev.append((t, p, 'queued'))
        elif 'flushBlocking' in st: ev.append((t, p, 'blocking'))
    if kind == 'StateTransition' and 'Waiting->Runnable' in rest and 'pushBurst' in st:
        ev.append((t, p, 'wake'))
    i = j
ev.sort()
bursts = []
cur = []
for e in ev:
    if cur and e[0] - cur[-1][0] > 2_000_000:
        bursts.append(cur); cur = []
    cur.append(e)
if cur: bursts.append(cur)
print(f"{len(bursts)} bursts")
for b in bursts:
    t0 = b[0][0]
    writes = [e for e in b if e[2] != 'wake']
    if not writes: continue
    per = collections.defaultdict(list)
    for e in writes: per[e[1]].append(e[0] - t0)
    kinds = collections.Counter(e[2] for e in writes)
    s = f"burst: {len(writes)} writes {dict(kinds)}, first event {b[0][2]}, span {(writes[-1][0]-t0)/1e6:.2f} ms; "
    s += "; ".join(f"P{p}: {len(v)} writes, first +{v[0]/1e3:.0f} µs, last +{v[-1]/1e3:.0f} µs" for p, v in sorted(per.items()))
    print(s)
PY
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
