#!/usr/bin/env bash
# The second comparison peer of meshcast-bench: Centrifugo v6, configured by
# centrifugo.json next to this script. One node uses the memory engine;
# several nodes use the Redis engine (one redis-server on loopback, the same
# apt package peer.sh uses), which is how Centrifugo scales out.
#
#   centrifugo.sh install      build centrifugo with `go install` from the Go module
#                              proxy into the cache (first use only), and install
#                              redis-server (apt) if missing
#   centrifugo.sh up           install if needed, start the nodes (and Redis for more
#                              than one), print the "peer ready" lines, and stay up
#                              until SIGINT/SIGTERM
#   centrifugo.sh run CMD...   start everything, run CMD with PEER_URLS, PEER_PIDS,
#                              PEER_REDIS set, then stop everything
#   centrifugo.sh bin          install if needed and print the binary's path
#
# Environment: CF_PORTS ("8101 8102 8103": one node per port), CF_REDIS_PORT
# (6391), CF_VERSION (v6.9.1), CF_CACHE ($XDG_CACHE_HOME/meshcast-bench or
# ~/.cache/meshcast-bench). The build's module and build caches live in
# CF_CACHE too and are removed after the build, so the script writes nothing
# outside CF_CACHE; Centrifugo itself writes no files (logs go to stderr).
# Everything started is stopped on exit (trap), whatever the exit path.
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERSION=${CF_VERSION:-v6.9.1}
CACHE=${CF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshcast-bench}
BIN=$CACHE/centrifugo-$VERSION/bin/centrifugo
REDIS_PORT=${CF_REDIS_PORT:-6391}
PORTS=${CF_PORTS:-"8101 8102 8103"}
PIDS=()

log() { echo "centrifugo: $*" >&2; }

STOP_GRACE=50 # Centrifugo drains its clients: 5 s to exit, then kill -9
# shellcheck source=common.sh
. "$DIR/common.sh"

nodes() { echo $PORTS | wc -w; }

install() {
	if [ ! -x "$BIN" ]; then
		if ! command -v go >/dev/null; then
			log "go is missing: it builds centrifugo (go install github.com/centrifugal/centrifugo/v6@$VERSION)"
			exit 1
		fi
		local build=$CACHE/centrifugo-$VERSION/build
		rm -rf "$build"
		mkdir -p "$build/tmp"
		log "go install github.com/centrifugal/centrifugo/v6@$VERSION (a few minutes, first use only)"
		# The version is stamped as the release builds do, so the logs name it.
		(cd "$build" && GOBIN=$(dirname "$BIN") GOMODCACHE=$build/mod GOCACHE=$build/cache GOPATH=$build/path \
			GOTMPDIR=$build/tmp GOFLAGS=-modcacherw CGO_ENABLED=0 \
			go install -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=${VERSION#v}" \
			"github.com/centrifugal/centrifugo/v6@$VERSION" >&2)
		rm -rf "$build"
	fi
	if [ "$(nodes)" -gt 1 ]; then
		install_redis
	fi
}

start() {
	stop_on_exit
	local engine=memory redis=""
	if [ "$(nodes)" -gt 1 ]; then
		engine=redis
		start_redis "$REDIS_PORT"
		redis=127.0.0.1:$REDIS_PORT
	fi
	local urls="" pids=""
	for port in $PORTS; do
		CENTRIFUGO_ENGINE_REDIS_ADDRESS="redis://127.0.0.1:$REDIS_PORT" CENTRIFUGO_NODE_NAME="bench-$port" \
			"$BIN" --config "$DIR/centrifugo.json" --http_server.address 127.0.0.1 \
			--http_server.port "$port" --engine.type "$engine" >&2 &
		PIDS+=($!)
		urls+="${urls:+,}ws://127.0.0.1:$port/connection/websocket"
		pids+="${pids:+,}$!"
	done
	for port in $PORTS; do wait_http "http://127.0.0.1:$port/health"; done
	announce PEER_URLS="$urls" PEER_PIDS="$pids" PEER_REDIS="$redis"
}

verb_bin() {
	install
	echo "$BIN"
}

EXTRA_VERBS=bin
dispatch centrifugo "$@"
