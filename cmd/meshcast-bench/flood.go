package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// floodConfig is the "flood" scenario: a 2-node meshcast cluster of real
// processes, legitimate traffic into node 0 measured without and then
// with one attack on node 0, and node 0's RSS throughout.
type floodConfig struct {
	Bin      string
	BasePort int
	Attack   string
	Duration time.Duration
	Extra    []string // more node flags
	Probe    probeConfig
	Attacker attackConfig
}

// floodPhase is what one phase measured.
type floodPhase struct {
	Name          string  `json:"name"`
	Sent          uint64  `json:"publishes"`
	Delivered     uint64  `json:"deliveries"`
	Expected      uint64  `json:"expected_deliveries"` // publishes times subscribers that got in
	Subscribers   uint64  `json:"subscribers"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	ConnectP99Ms  float64 `json:"connect_p99_ms"`
	ConnectFails  uint64  `json:"connect_failures"` // subscribers and check-ins kept out
	NodeCPU       float64 `json:"node_cpu_cores"`   // the attacked node's CPU time over the phase, in cores
	RSSStartMiB   float64 `json:"rss_start_mib"`
	RSSMaxMiB     float64 `json:"rss_max_mib"`
	AttackOpened  int64   `json:"attack_connections_or_packets"`
	AttackRefused int64   `json:"attack_refused_within_100ms"`
	AttackMiB     float64 `json:"attack_mib_written"` // into the attacker's socket buffers
}

type floodReport struct {
	Attack   string     `json:"attack"`
	Baseline floodPhase `json:"baseline"`
	Flood    floodPhase `json:"flood"`
}

func cmdFlood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg floodConfig
	var asJSON bool
	var extra string
	fs.StringVar(&cfg.Bin, "meshcast-bin", "", "meshcast binary (default: go build ./cmd/meshcast of the module above the working directory)")
	fs.IntVar(&cfg.BasePort, "meshcast-port", 29080, "node i: HTTP port+i, gossip port+100+2i, peer links port+101+2i, on 127.0.0.1")
	fs.StringVar(&cfg.Attack, "attack", "peer-slots", "the attack: "+attackNames())
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "length of each phase (baseline, then flood)")
	fs.StringVar(&extra, "node-flags", "--max-connections 5000 --max-connections-per-ip 150 --api-key flood", "more flags for every node, space-separated")
	fs.IntVar(&cfg.Probe.subs, "subs", 100, "legitimate subscribers on the attacked node")
	fs.Float64Var(&cfg.Probe.rate, "rate", 200, "legitimate publishes per second, from the other node")
	fs.IntVar(&cfg.Probe.size, "size", 100, "bytes of each publish's data")
	fs.IntVar(&cfg.Attacker.Conc, "attack-conns", 0, "attack connections (or UDP senders) at once (default: the attack's)")
	fs.Float64Var(&cfg.Attacker.Rate, "attack-rate", 0, "attack connection attempts (UDP packets) per second, in all (default: the attack's)")
	fs.IntVar(&cfg.Attacker.Addrs, "attack-addrs", 0, "attack source addresses, 127.0.0.10 on (default: the attack's)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Extra = strings.Fields(extra)
	rep, err := runFlood(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, rep)
	}
	printFlood(stdout, rep)
	return nil
}

func runFlood(ctx context.Context, cfg floodConfig, stderr io.Writer) (*floodReport, error) {
	if cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "meshcast-flood")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		wd, _ := os.Getwd()
		root, err := moduleRoot(wd)
		if err != nil {
			return nil, err
		}
		if cfg.Bin, err = buildMeshcast(ctx, root, dir, stderr); err != nil {
			return nil, err
		}
	}
	cl, err := startMeshcast(ctx, meshcastOpts{Bin: cfg.Bin, BasePort: cfg.BasePort, Extra: cfg.Extra}, 2, stderr)
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	cfg.Probe.subURL, cfg.Probe.pubURL = cl.URLs[0], cl.URLs[1]
	target := floodTarget{
		http:   "127.0.0.1:" + strconv.Itoa(cfg.BasePort),
		gossip: "127.0.0.1:" + strconv.Itoa(cfg.BasePort+100),
		peer:   "127.0.0.1:" + strconv.Itoa(cfg.BasePort+101),
		label:  "meshcast",
	}
	rep := &floodReport{Attack: cfg.Attack}
	fmt.Fprintf(stderr, "flood %s: baseline for %v\n", cfg.Attack, cfg.Duration)
	if rep.Baseline, err = floodPhaseRun(ctx, "baseline", cfg, cl.PIDs[0], nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "flood %s: under attack for %v\n", cfg.Attack, cfg.Duration)
	attackCtx, stopAttack := context.WithCancel(ctx)
	a, err := startAttack(attackCtx, cfg.Attack, target, cfg.Attacker)
	if err != nil {
		stopAttack()
		return nil, err
	}
	rep.Flood, err = floodPhaseRun(ctx, "flood", cfg, cl.PIDs[0], a)
	stopAttack()
	a.wait()
	return rep, err
}

// floodPhaseRun measures the probe for cfg.Duration, sampling pid's RSS.
func floodPhaseRun(ctx context.Context, name string, cfg floodConfig, pid int, a *attacker) (floodPhase, error) {
	ph := floodPhase{Name: name}
	start, _ := readProcStatus(pid)
	ph.RSSStartMiB = float64(start.RSSKiB) / 1024
	var peak atomic.Int64
	peak.Store(start.RSSKiB)
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sampleRSS(sctx, pid, &peak)
	}()
	var p probe
	cpu0, t0 := procCPU(pid), time.Now()
	pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	err := runProbe(pctx, cfg.Probe, &p)
	cancel()
	ph.NodeCPU = (procCPU(pid) - cpu0).Seconds() / time.Since(t0).Seconds()
	stopSampling()
	wg.Wait()
	var lat, conn Hist
	p.lat.addTo(&lat)
	p.connect.addTo(&conn)
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	ph.Sent, ph.Delivered, ph.Expected = p.sent.Load(), p.recv.Load(), p.sent.Load()*p.subs.Load()
	ph.Subscribers = p.subs.Load()
	ph.P50Ms, ph.P99Ms, ph.MaxMs = ms(lat.Quantile(0.5)), ms(lat.Quantile(0.99)), ms(lat.Max())
	ph.ConnectP99Ms, ph.ConnectFails = ms(conn.Quantile(0.99)), p.connFail.Load()
	ph.RSSMaxMiB = float64(peak.Load()) / 1024
	if a != nil {
		ph.AttackOpened, ph.AttackRefused = a.stats.opened.Load(), a.stats.refused.Load()
		ph.AttackMiB = float64(a.stats.bytes.Load()) / (1 << 20)
	}
	return ph, err
}

// sampleRSS keeps the highest RSS of pid in peak, every 100 ms.
func sampleRSS(ctx context.Context, pid int, peak *atomic.Int64) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		if s, err := readProcStatus(pid); err == nil && s.RSSKiB > peak.Load() {
			peak.Store(s.RSSKiB)
		}
	}
}

// procCPU is the user plus system CPU time pid has used (/proc/pid/stat
// fields 14 and 15, in clock ticks of 10 ms on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), ") ") // the command name may hold spaces
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func printFlood(w io.Writer, r *floodReport) {
	fmt.Fprintf(w, "attack: %s\n", r.Attack)
	fmt.Fprintf(w, "%-9s %9s %15s %7s %7s %7s %12s %9s %8s %10s %10s %12s %10s\n", "phase", "publishes", "delivered",
		"p50 ms", "p99 ms", "max ms", "connect p99", "conn fail", "node CPU", "RSS start", "RSS max", "attack ops", "attack MiB")
	for _, p := range []floodPhase{r.Baseline, r.Flood} {
		fmt.Fprintf(w, "%-9s %9d %7d/%-7d %7.1f %7.1f %7.1f %12.1f %9d %8.2f %10.1f %10.1f %12d %10.1f\n", p.Name, p.Sent,
			p.Delivered, p.Expected, p.P50Ms, p.P99Ms, p.MaxMs, p.ConnectP99Ms, p.ConnectFails, p.NodeCPU, p.RSSStartMiB,
			p.RSSMaxMiB, p.AttackOpened, p.AttackMiB)
	}
	if r.Baseline.P99Ms > 0 {
		fmt.Fprintf(w, "p99 under attack / baseline: %.2fx; RSS growth: %.1f MiB\n",
			r.Flood.P99Ms/r.Baseline.P99Ms, r.Flood.RSSMaxMiB-r.Baseline.RSSMaxMiB)
	}
}
