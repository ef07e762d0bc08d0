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

# shellcheck source=common.sh
. "$DIR/common.sh"

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
	install_redis
}

start() {
	stop_on_exit
	start_redis "$REDIS_PORT"
	local urls="" pids=""
	for port in $PORTS; do
		PORT=$port REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$DIR/server.js" >&2 &
		PIDS+=($!)
		urls+="${urls:+,}ws://127.0.0.1:$port"
		pids+="${pids:+,}$!"
	done
	for port in $PORTS; do wait_http "http://127.0.0.1:$port/health"; done
	announce PEER_URLS="$urls" PEER_PIDS="$pids" PEER_REDIS="127.0.0.1:$REDIS_PORT" PEER_REDIS_PID="$REDIS_PID"
}

dispatch peer "$@"
