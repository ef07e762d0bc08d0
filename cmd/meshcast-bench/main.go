package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usage = `usage: meshcast-bench <scenario> [flags]

scenarios:
  fanout   N subscribers of one channel, P publishers at a total rate; loss, order, latency
           (--ramp: raise the rate until loss or p99 over --p99-bound)
  idle     N idle subscribed connections; server RSS per connection, threads, goroutines
  rooms    C rooms of K subscribers, most rooms on one node; random-room publishes;
           deliveries, latency, loss and bytes crossing between nodes
  churn    connect + subscribe + close at a target rate (--ramp: raise it until not sustained);
           upgrades/s, error rate, connect-to-ack latency
  compare  the scenarios against a meshcast cluster, the Socket.IO + Redis peer (peer/peer.sh)
           and Centrifugo (peer/centrifugo.sh), alternating A B C A B C, with the ratios
           of meshcast to each
  flood    a 2-node meshcast cluster; legitimate pub/sub into node 0 measured without,
           then with, one attack on node 0 (--attack); node 0's RSS throughout
  history  a 3-node cluster with history: publish-to-ack latency with and without it, and
           N clients of a node killed with -9 recovering what they missed on the others
  presence N members of one presence channel over a cluster it starts, churned at R
           events/s: CPU per event per node, bytes between nodes per event, the
           time of a presence answer of the whole channel

run "meshcast-bench <scenario> -h" for its flags.
`

func main() {
	if id := os.Getenv(workerEnv); id != "" {
		os.Exit(runWorker(id))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runWorker(id string) int {
	n, _ := strconv.Atoi(id)
	if err := workerMain(n, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// run executes one scenario and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if _, ok := stderr.(*os.File); !ok {
		// Worker stderr copiers and the progress line write concurrently.
		stderr = &lockedWriter{w: stderr}
	}
	var err error
	switch args[0] {
	case "fanout":
		err = cmdFanout(ctx, args[1:], stdout, stderr)
	case "idle":
		err = cmdIdle(ctx, args[1:], stdout, stderr)
	case "rooms":
		err = cmdRooms(ctx, args[1:], stdout, stderr)
	case "churn":
		err = cmdChurn(ctx, args[1:], stdout, stderr)
	case "compare":
		err = cmdCompare(ctx, args[1:], stdout, stderr)
	case "flood":
		err = cmdFlood(ctx, args[1:], stdout, stderr)
	case "history":
		err = cmdHistory(ctx, args[1:], stdout, stderr)
	case "presence":
		err = cmdPresence(ctx, args[1:], stdout, stderr) // presence.go
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown scenario %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "meshcast-bench:", err)
		return 1
	}
	return 0
}

// commonFlags binds the connection flags every scenario shares.
func commonFlags(fs *flag.FlagSet, cc *connConfig, urls *string, asJSON *bool) {
	fs.StringVar(urls, "urls", "ws://127.0.0.1:8080/ws", "comma-separated WebSocket URLs; connections go round-robin")
	fs.StringVar(&cc.Proto, "proto", "v1", "client protocol: v1 (meshcast), socketio (Engine.IO v4, WebSocket only) or centrifugo (JSON, /connection/websocket)")
	fs.IntVar(&cc.PerWorker, "per-worker", 5000, "most connections per worker process (one process may open 20,000 files)")
	fs.IntVar(&cc.Workers, "workers", 0, "worker processes (0: from --per-worker)")
	fs.IntVar(&cc.DialConc, "dial-concurrency", 64, "connections being opened at once, per worker")
	fs.DurationVar(&cc.DialTimeout, "dial-timeout", 10*time.Second, "TCP connect plus WebSocket handshake limit")
	fs.DurationVar(&cc.AckTimeout, "ack-timeout", 15*time.Second, "limit for the subscribe ack")
	fs.DurationVar(&cc.Timeout, "timeout", 0, "hard limit of the whole run (0: derived from the scenario)")
	fs.BoolVar(&cc.Quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&cc.Reader, "reader", "goroutine", "subscribers' receive path: goroutine (one each, bufio) epoll (one batched, allocation-free epoll loop per worker process; Linux) or uring (epoll, each batch of ready sockets read with one io_uring_enter; Linux)")
	fs.StringVar(&cc.Arrival, "arrival", "read", "where a delivery's latency ends: read (when the load tool reads it) or kernel (the kernel's receive timestamp of the read, SO_TIMESTAMPNS: the load tool's own reading left out; needs --reader epoll or uring; the read latency is reported too)")
	fs.BoolVar(&cc.ReaderIdle, "reader-idle", false, "run the epoll or uring reader's threads under SCHED_IDLE, so that reading never takes a core from the servers on the same machine (publishers keep their priority; pair with --arrival kernel, and mind the report's \"read together\" count: a reader that waited reads several deliveries at once, and all carry the last one's stamp; Linux)")
	fs.BoolVar(asJSON, "json", false, "print one JSON object per scenario instead of the table")
}

func cmdFanout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fanoutConfig
	var urls string
	var asJSON bool
	fs.IntVar(&cfg.Subs, "subs", 3000, "subscribers of the channel")
	fs.IntVar(&cfg.Pubs, "pubs", 3, "publishers; the rate is spread evenly over them")
	var pubURLs, serverPIDs string
	fs.StringVar(&serverPIDs, "server-pids", "", "comma-separated server PIDs: each step reports their CPU per delivery")
	fs.StringVar(&pubURLs, "pub-urls", "", "comma-separated URLs for the publishers, round-robin (default: --urls); e.g. subscribers on other nodes than the publisher")
	return runFanoutCLI(ctx, fs, &cfg, &urls, &asJSON, args, stdout, stderr, func() error {
		for _, p := range splitList(serverPIDs) {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bad pid %q: %w", p, err)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, n)
		}
		var err error
		if pubURLs != "" {
			cfg.PubURLs, err = parseURLs(pubURLs)
		}
		return err
	})
}

func cmdRooms(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rooms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fanoutConfig
	var urls, clusterURLs string
	var asJSON bool
	var cross float64
	fs.IntVar(&cfg.Rooms, "rooms", 100, "channels (rooms)")
	fs.IntVar(&cfg.RoomSize, "room-size", 30, "subscribers per room")
	fs.Float64Var(&cross, "cross", 0.1, "fraction of rooms whose subscribers are spread over all URLs; the others sit on one node each")
	fs.IntVar(&cfg.Pubs, "pubs", 4, "publishers (round-robin over the URLs), each to a random room per message")
	fs.StringVar(&clusterURLs, "cluster-urls", "", "comma-separated meshcast /api/cluster URLs: peer-link bytes sent are summed")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "host:port of the peer's Redis (Socket.IO, Centrifugo): INFO stats input+output bytes count as crossing between nodes")
	return runFanoutCLI(ctx, fs, &cfg, &urls, &asJSON, args, stdout, stderr, func() error {
		if cfg.Rooms < 1 || cfg.RoomSize < 1 {
			return fmt.Errorf("rooms needs --rooms and --room-size above zero")
		}
		cfg.Subs = cfg.Rooms * cfg.RoomSize
		if cross > 0 {
			cfg.CrossEvery = max(1, int(math.Round(1/cross)))
		}
		cfg.ClusterURLs = splitList(clusterURLs)
		if cfg.Channel == "bench" {
			cfg.Channel = "room"
		}
		return nil
	})
}

// runFanoutCLI binds the flags fanout and rooms share, parses, and runs.
func runFanoutCLI(ctx context.Context, fs *flag.FlagSet, cfg *fanoutConfig, urls *string, asJSON *bool,
	args []string, stdout, stderr io.Writer, fixups ...func() error) error {
	commonFlags(fs, &cfg.connConfig, urls, asJSON)
	fs.Float64Var(&cfg.Rate, "rate", 200, "total publishes per second (first step with --ramp)")
	fs.IntVar(&cfg.Size, "size", 100, "bytes of the data JSON of each publish")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "publishing time (per step; 10s per step with --ramp unless set)")
	fs.StringVar(&cfg.Channel, "channel", "bench", "channel name")
	fs.BoolVar(&cfg.Ramp, "ramp", false, "raise the rate step by step until loss or p99 over --p99-bound")
	fs.Float64Var(&cfg.RampFactor, "ramp-factor", 1.25, "rate multiplier between ramp steps")
	fs.IntVar(&cfg.MaxSteps, "max-steps", 20, "most ramp steps")
	fs.DurationVar(&cfg.P99Bound, "p99-bound", 250*time.Millisecond, "ramp: highest acceptable p99 latency")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "longest wait for in-flight deliveries after each step")
	fs.IntVar(&cfg.Retries, "retries", 1, "ramp: repeat a step that failed on p99 (no loss) this often before stopping")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.URLs, err = parseURLs(*urls); err != nil {
		return err
	}
	if err := checkReadOptions(cfg.connConfig); err != nil {
		return err
	}
	if cfg.Ramp && !flagSet(fs, "duration") {
		cfg.Duration = 10 * time.Second
	}
	for _, f := range fixups {
		if err := f(); err != nil {
			return err
		}
	}
	rep, err := runFanout(ctx, *cfg, stderr)
	if rep != nil && len(rep.Steps) > 0 || err == nil {
		if *asJSON {
			_ = writeJSON(stdout, rep)
		} else {
			printFanout(stdout, rep)
		}
	}
	return err
}

func cmdIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg idleConfig
	var urls, pids, stats string
	var asJSON bool
	commonFlags(fs, &cfg.connConfig, &urls, &asJSON)
	fs.IntVar(&cfg.Conns, "conns", 15000, "idle connections, each subscribed to its own channel")
	fs.StringVar(&pids, "pids", "", "comma-separated server PIDs whose RSS and threads are read from /proc")
	fs.StringVar(&stats, "stats-urls", "", "comma-separated /api/stats URLs for goroutine counts (optional)")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, "longest wait for the server RSS to settle")
	fs.StringVar(&cfg.Channel, "channel", "idle", "channel prefix: connection i subscribes to <prefix>-<i>")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.URLs, err = parseURLs(urls); err != nil {
		return err
	}
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("bad pid %q: %w", p, err)
		}
		cfg.PIDs = append(cfg.PIDs, n)
	}
	cfg.StatsURLs = splitList(stats)
	rep, err := runIdle(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, rep)
	}
	printIdle(stdout, rep)
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
