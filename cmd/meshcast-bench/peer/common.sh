# Shared by peer.sh and centrifugo.sh (sourced, not run): installing and
# starting Redis, waiting for a node, announcing the peer to meshcast-bench
# compare, and stopping everything started, whatever the exit path. The
# sourcing script sets PIDS=(), defines log, and may set STOP_GRACE (tenths
# of a second each process gets to exit before kill -9; default 30).

install_redis() {
	command -v redis-server >/dev/null && return 0
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	log "apt-get install redis-server"
	$sudo apt-get update >&2 && $sudo apt-get install -y redis-server >&2
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ ${#PIDS[@]} -gt 0 ]; then
		kill "${PIDS[@]}" 2>/dev/null || true
		for _ in $(seq "${STOP_GRACE:-30}"); do
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

# stop_on_exit makes cleanup run however the script ends.
stop_on_exit() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

wait_http() { # url
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	log "$1 did not answer in 10 s"
	return 1
}

start_redis() { # port; sets REDIS_PID
	# No persistence, loopback only, a port of its own.
	redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
		--protected-mode yes --loglevel warning --daemonize no >&2 &
	PIDS+=($!)
	REDIS_PID=$!
	for _ in $(seq 100); do
		redis-cli -p "$1" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -p "$1" ping >/dev/null
}

# announce prints the lines meshcast-bench compare waits for; with a
# command (run CMD...) they go to stderr and the command runs instead.
announce() { # NAME=VALUE...
	local kv
	for kv in "$@"; do
		export "${kv?}"
		echo "$kv"
	done
	echo "peer ready"
}

# dispatch runs the script's verb: install, up (stay up until a signal or
# a child's exit), run CMD..., or the extra verbs given as name=function.
dispatch() { # what "$@"
	local what=$1
	shift
	case "${1:-}" in
	install)
		install
		;;
	up)
		install
		start
		# Stay up until a signal; wait returns early if a child dies.
		wait -n "${PIDS[@]}" || true
		log "a $what process exited"
		exit 1
		;;
	run)
		shift
		[ $# -gt 0 ] || {
			log "run needs a command"
			exit 2
		}
		install
		start >&2
		"$@"
		;;
	*)
		if [ -n "${1:-}" ] && declare -F "verb_$1" >/dev/null; then
			"verb_$1"
			return
		fi
		echo "usage: $0 install | up | run CMD...${EXTRA_VERBS:+ | $EXTRA_VERBS}" >&2
		exit 2
		;;
	esac
}
