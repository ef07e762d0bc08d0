#!/usr/bin/env bash
# The comparison peer of meshcast-bench: Redis plus N Socket.IO nodes using
# the Redis adapter (server.js), all on loopback.
#
#   peer.sh install        install node deps (npm ci) and redis-server (apt) if missing
#   peer.sh up             install if needed, start everything, print the
#                          "peer ready" lines, and stay up until SIGINT/SIGTERM
#   peer.sh run CMD...     start everything, run CMD with PEER_URLS, PEER_PIDS,
#                          PEER_REDIS set, then stop everything
#
# Environment: PEER_REDIS_PORT (6390), PEER_PORTS ("3001 3002 3003").
# Everything started is stopped on exit (trap), whatever the exit path.
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDIS_PORT=${PEER_REDIS_PORT:-6390}
PORTS=${PEER_PORTS:-"3001 3002 3003"}
PIDS=()

log() { echo "peer: $*" >&2; }

install() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		log "node and npm are missing: install them (Debian: apt-get install -y nodejs npm)"
		exit 1
	fi
	if [ ! -f "$DIR/node_modules/socket.io/package.json" ] ||
		[ ! -f "$DIR/node_modules/@socket.io/redis-adapter/package.json" ] ||
		[ ! -f "$DIR/node_modules/redis/package.json" ]; then
		log "npm ci (versions pinned by package-lock.json)"
		(cd "$DIR" && npm ci --no-audit --no-fund >&2)
	fi
	if ! command -v redis-server >/dev/null; then
		local sudo=""
		[ "$(id -u)" -ne 0 ] && sudo=sudo
		log "apt-get install redis-server"
		$sudo apt-get update >&2 && $sudo apt-get install -y redis-server >&2
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ ${#PIDS[@]} -gt 0 ]; then
		kill "${PIDS[@]}" 2>/dev/null || true
		# Give them 3 s to exit, then force.
		for _ in $(seq 30); do
			local alive=0
			for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
			[ $alive -eq 0 ] && break
			sleep 0.1
		done
		kill -9 "${PIDS[@]}" 2>/dev/null || true
		wait "${PIDS[@]}" 2>/dev/null || true
		log "stopped"
	fi
	exit $rc
}

wait_http() { # url
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	log "$1 did not answer in 10 s"
	return 1
}

start() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# No persistence, loopback only, a port of its own.
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--protected-mode yes --loglevel warning --daemonize no >&2 &
	PIDS+=($!)
	REDIS_PID=$!
	for _ in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -p "$REDIS_PORT" ping >/dev/null
	local urls="" pids=""
	for port in $PORTS; do
		PORT=$port REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$DIR/server.js" >&2 &
		PIDS+=($!)
		urls+="${urls:+,}ws://127.0.0.1:$port"
		pids+="${pids:+,}$!"
	done
	for port in $PORTS; do wait_http "http://127.0.0.1:$port/health"; done
	export PEER_URLS=$urls PEER_PIDS=$pids PEER_REDIS=127.0.0.1:$REDIS_PORT PEER_REDIS_PID=$REDIS_PID
	# meshcast-bench compare waits for these lines.
	echo "PEER_URLS=$PEER_URLS"
	echo "PEER_PIDS=$PEER_PIDS"
	echo "PEER_REDIS=$PEER_REDIS"
	echo "PEER_REDIS_PID=$PEER_REDIS_PID"
	echo "peer ready"
}

case "${1:-}" in
install)
	install
	;;
up)
	install
	start
	# Stay up until a signal; wait returns early if a child dies.
	wait -n "${PIDS[@]}" || true
	log "a peer process exited"
	exit 1
	;;
run)
	shift
	[ $# -gt 0 ] || { log "run needs a command"; exit 2; }
	install
	start >&2
	"$@"
	;;
*)
	echo "usage: $0 install | up | run CMD..." >&2
	exit 2
	;;
esac
