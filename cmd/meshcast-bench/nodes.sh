# Sourced by the bench scripts (ab.sh, latency.sh, run-all.sh,
# burst-trace.sh): a cluster of meshcast nodes on loopback. The caller sets
# BASE (node i: HTTP BASE+i, gossip BASE+100+2i, peer BASE+101+2i) and
# PIDS=(); SECRET is made here unless set.
SECRET=${SECRET:-$(head -c 32 /dev/urandom | base64)} # nodes refuse a weak one

# nodes_up BIN N NAME [FLAG...]: N nodes of BIN named NAME-i, each joining
# node 0, with FLAGs; back once each node sees N members alive and answers
# /readyz (20 s at most per node).
nodes_up() {
	local bin=$1 n=$2 name=$3
	shift 3
	for ((i = 0; i < n; i++)); do
		local join=()
		((i > 0)) && join=(--join "127.0.0.1:$((BASE + 100))")
		MESHCAST_SECRET=$SECRET "$bin" --listen "127.0.0.1:$((BASE + i))" --name "$name-$i" \
			--gossip "127.0.0.1:$((BASE + 100 + 2 * i))" --peer "127.0.0.1:$((BASE + 101 + 2 * i))" \
			"${join[@]}" "$@" &
		PIDS+=($!)
	done
	for ((i = 0; i < n; i++)); do
		for _ in $(seq 100); do
			[ "$(curl -fsS "http://127.0.0.1:$((BASE + i))/api/cluster" 2>/dev/null | grep -c '"alive"')" -ge "$n" ] &&
				curl -fsS -o /dev/null "http://127.0.0.1:$((BASE + i))/readyz" 2>/dev/null && break
			sleep 0.2
		done
	done
}

# nodes_down stops every node started and waits for them.
nodes_down() {
	if [ ${#PIDS[@]} -gt 0 ]; then
		kill "${PIDS[@]}" 2>/dev/null || true
		wait "${PIDS[@]}" 2>/dev/null || true
		PIDS=()
	fi
}
