// Command meshcast-bench is the load generator of meshcast.
//
// Scenarios:
//
//	meshcast-bench fanout --urls ws://127.0.0.1:8080/ws[,ws://...] --subs 3000 --pubs 3 \
//	    --rate 200 --size 100 --duration 20s [--channel bench] [--ramp] [--p99-bound 250ms] [--json]
//	meshcast-bench idle --urls ws://127.0.0.1:8080/ws --conns 15000 --pids 1234[,5678] \
//	    [--stats-urls http://127.0.0.1:8080/api/stats] [--hold 10s] [--json]
//
//	meshcast-bench rooms --urls ... --rooms 1000 --room-size 3 [--cluster-urls .../api/cluster | --redis 127.0.0.1:6390]
//	meshcast-bench churn --urls ws://127.0.0.1:8080/ws --rate 1000 [--ramp] [--sources 64] [--conc 256]
//	meshcast-bench compare [--systems meshcast,socketio,centrifugo] [--scenarios fanout1,fanout3,rooms,idle,churn] \
//	    [--rounds 2] [--out results]
//
// churn opens, subscribes (waiting for the ack) and cleanly closes
// connections at a target rate, rotating loopback source addresses so
// TIME_WAIT does not exhaust ephemeral ports; a step is sustained when at
// least 95% of the target completed, the error rate is at most
// --max-error-rate and the dial-to-ack p99 is within --p99-bound.
//
// compare starts fresh clusters itself for every run (meshcast: the binary
// of --meshcast-bin or one it builds; socketio: peer/peer.sh, Socket.IO v4
// nodes with @socket.io/redis-adapter and a Redis without persistence;
// centrifugo: peer/centrifugo.sh, Centrifugo v6 built with go install,
// memory engine on one node, Redis engine on three), runs the --systems in
// turn, round after round (A B C A B C), and prints each figure per system
// with the ratio of meshcast to each and the target (against
// Socket.IO). Cross-node bytes: meshcast sums bytes_sent over every node's
// peer links (/api/cluster); the peers' nodes only talk through Redis, so
// their figure is Redis's total_net_input_bytes + total_net_output_bytes
// delta (INFO stats): a message goes node -> Redis once and Redis -> every
// node that wants it once (Socket.IO: every node; Centrifugo subscribes
// each node to its channels), both hops cross between processes (and,
// deployed, between hosts).
//
// The Socket.IO "join" carries an ack id (42<id>["join",room]) that
// peer/server.js answers (43<id>[]) once the socket is in the room, so the
// bench starts publishing when every subscriber is known ready, as with
// meshcast's sub ack, instead of after a fixed wait.
//
// fanout subscribes N connections to one channel (round-robin over the
// URLs, each waits for its ack), then P publishers send at a steady total
// rate; each delivery's payload carries the send time, a per-publisher
// sequence number and the publisher index, so every subscriber counts
// loss (gaps, and the missing tail after a drain wait), duplicates and
// reordering, and records latency in a mergeable log-linear histogram.
// --ramp repeats steps at a rising rate until loss or p99 over the bound.
// idle opens N subscribed connections and reports the server's RSS growth
// per connection (from /proc/PID/status), threads and goroutines.
// --proto socketio speaks Socket.IO v4 (Engine.IO v4, WebSocket only) to
// compare with a Socket.IO server using the same "join"/"msg" events;
// --proto centrifugo speaks Centrifugo's JSON client protocol (centrifugo.go).
//
// Process layout: one process may open at most 20,000 files, so the
// coordinator re-executes its own binary (environment MESHCAST_BENCH_WORKER
// set to the worker id) into K workers of at most --per-worker connections
// (and at least two for fanout, to use both cores). Coordinator and workers
// exchange JSON lines over the workers' stdin/stdout (wire.go). Workers die
// with the coordinator (Pdeathsig on Linux, and stdin EOF), and every run
// has a hard timeout, so a run leaves nothing behind.
//
// Concurrency: inside a worker each connection has one goroutine that owns
// its reads; subscriber counters sit behind a per-subscriber mutex (read by
// the stats path once a second), latency goes into sharded atomic
// histograms, and publisher writes share a per-connection write mutex with
// pong replies. The coordinator is single-goroutine apart from one reader
// per worker's stdout. Subscriber reading parses frames itself (server
// frames are unmasked) and scans the payload for t/s/p without decoding
// JSON, allocating nothing per message. With --reader epoll (Linux) a
// subscriber's goroutine ends at its ack: one epoll loop per worker then
// reads every subscriber, one read per ready socket into the loop's buffer
// (rawread_linux.go), a cheaper receive path when each delivery is a read
// of its own; --reader uring reads each batch of ready sockets with one
// io_uring_enter. Latency ends at the read, or with --arrival kernel at the
// kernel's receive timestamp of that read (the read latency reported
// beside it), which leaves the load tool's own wait for a core out when it
// shares the machine with the servers; --reader-idle runs the poll loops
// under SCHED_IDLE. fanout reports each step's CPU per delivery of the
// workers and, with --server-pids, of the servers.
package main
