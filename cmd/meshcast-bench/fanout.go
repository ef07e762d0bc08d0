package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

type fanoutConfig struct {
	connConfig
	Subs, Pubs int
	Rate       float64 // total publishes/s (first step when ramping)
	Size       int
	Duration   time.Duration
	Channel    string
	Ramp       bool
	RampFactor float64
	MaxSteps   int
	P99Bound   time.Duration
	Drain      time.Duration // longest wait for in-flight deliveries after a step
	Retries    int           // ramp: a failed step is repeated this often before it counts (a shared machine has spikes)

	// rooms scenario: Rooms channels of RoomSize subscribers; every
	// CrossEvery-th room is spread over all URLs, the others sit on one
	// node. ClusterURLs (/api/cluster) give the bytes sent between nodes.
	Rooms, RoomSize, CrossEvery int
	ClusterURLs                 []string
	PubURLs                     []string // publishers' URLs; nil: URLs
	// RedisAddr (host:port) takes the cross-node bytes from Redis INFO
	// instead: the Socket.IO peer's nodes only talk through Redis.
	RedisAddr string
	// ServerPIDs: the servers' processes, whose CPU per delivery each step
	// reports (as it does the load tool's own workers').
	ServerPIDs []int
}

// crossBytes reads the cumulative bytes crossing between nodes, from the
// meshcast nodes' /api/cluster or from Redis; ok is false when the run
// measures neither.
func (cfg *fanoutConfig) crossBytes(ctx context.Context) (n int64, ok bool) {
	if cfg.RedisAddr != "" {
		r, err := readRedisNet(ctx, cfg.RedisAddr)
		return r.total(), err == nil
	}
	if len(cfg.ClusterURLs) > 0 {
		return clusterBytesSent(ctx, cfg.ClusterURLs), true
	}
	return 0, false
}

func (cfg *fanoutConfig) channels() int { return max(cfg.Rooms, 1) }

// stepResult is one row of the report. Latencies are in milliseconds.
type stepResult struct {
	Step        int     `json:"step"`
	TargetRate  float64 `json:"targetRate"`
	Seconds     float64 `json:"seconds"`     // publishing time
	WallSec     float64 `json:"wallSeconds"` // from the first publish to the last delivery seen (polled every 100ms)
	Published   int64   `json:"published"`
	PubPerSec   float64 `json:"publishesPerSec"`
	Expected    int64   `json:"expected"`
	Received    int64   `json:"received"`
	DelivPerSec float64 `json:"deliveriesPerSec"`
	Lost        int64   `json:"lost"`
	Dups        int64   `json:"duplicates"`
	Reordered   int64   `json:"reordered"`
	Foreign     int64   `json:"unparsed"`
	P50         float64 `json:"p50ms"`
	P90         float64 `json:"p90ms"`
	P99         float64 `json:"p99ms"`
	Max         float64 `json:"maxms"`
	Mean        float64 `json:"meanms"`
	// --arrival kernel: the figures above end at the kernel's receive
	// timestamp; these at the load tool's read. Unstamped deliveries came
	// without a timestamp and were timed at the read.
	ReadP50   float64 `json:"readP50ms,omitempty"`
	ReadP90   float64 `json:"readP90ms,omitempty"`
	ReadP99   float64 `json:"readP99ms,omitempty"`
	ReadMax   float64 `json:"readMaxms,omitempty"`
	Unstamped int64   `json:"unstamped,omitempty"`
	Coalesced int64   `json:"coalesced,omitempty"` // timed at a later delivery's stamp, read together
	// Several URLs: the same latency (the figures above) of subscribers
	// on the node their publisher published to, and of those on another
	// node, whose publish crossed a peer link.
	Local       *nodeLatency `json:"publishersNode,omitempty"`
	Remote      *nodeLatency `json:"otherNodes,omitempty"`
	PubErrs     int64        `json:"pubErrors"`
	Disconnects int64        `json:"disconnects"`
	ClientBound bool         `json:"clientBound"`              // publishers fell >5% behind the target rate
	CrossBytes  int64        `json:"crossNodeBytes,omitempty"` // rooms: peer-link bytes sent during the step, all nodes
	CrossPerPub float64      `json:"crossNodeBytesPerPublish,omitempty"`
	CrossPerDel float64      `json:"crossNodeBytesPerDelivery,omitempty"`
	// CPU per delivery during the step (utime+stime over received), in µs:
	// the load tool's worker processes, and the --server-pids.
	ClientCPUus float64 `json:"clientCpuUsPerDelivery,omitempty"`
	ServerCPUus float64 `json:"serverCpuUsPerDelivery,omitempty"`
	OK          bool    `json:"ok"` // no loss and p99 within the bound
}

type fanoutReport struct {
	Scenario   string   `json:"scenario"`
	Rooms      int      `json:"rooms,omitempty"`
	RoomSize   int      `json:"roomSize,omitempty"`
	CrossEvery int      `json:"crossEvery,omitempty"`
	Proto      string   `json:"proto"`
	URLs       []string `json:"urls"`
	Subs       int      `json:"subs"`
	Pubs       int      `json:"pubs"`
	Size       int      `json:"size"`
	Workers    int      `json:"workers"`
	connectResult
	P99BoundMs float64      `json:"p99BoundMs"`
	Steps      []stepResult `json:"steps"`
	BestRate   float64      `json:"bestRate,omitempty"` // ramp: highest rate with no loss and p99 within the bound
	Stopped    string       `json:"stopped,omitempty"`  // ramp: why it ended
}

func (cfg *fanoutConfig) defaults() {
	if cfg.Channel == "" {
		cfg.Channel = "bench"
	}
	rampDefaults(&cfg.RampFactor, &cfg.MaxSteps, &cfg.P99Bound)
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		steps := 1
		if cfg.Ramp {
			steps = cfg.MaxSteps
		}
		per := cfg.Duration + cfg.Drain + 10*time.Second
		cfg.Timeout = 60*time.Second + time.Duration(cfg.Subs/100)*time.Second + time.Duration(steps)*per
	}
}

// runFanout runs the fanout scenario (one step, or a ramp) and returns its
// report; the workers are gone when it returns.
func runFanout(ctx context.Context, cfg fanoutConfig, stderr io.Writer) (*fanoutReport, error) {
	cfg.defaults()
	if cfg.Subs < 1 || cfg.Pubs < 1 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("fanout needs --subs, --pubs, --rate and --duration above zero")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	k := workerCount(cfg.Subs+cfg.Pubs, cfg.PerWorker, 2, cfg.Workers)
	c, err := startWorkers(k, stderr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	scenario := "fanout"
	if cfg.Rooms > 0 {
		scenario = "rooms"
	}
	rep := &fanoutReport{Scenario: scenario, Rooms: cfg.Rooms, RoomSize: cfg.RoomSize, CrossEvery: cfg.CrossEvery, Proto: cfg.Proto, URLs: cfg.URLs, Subs: cfg.Subs, Pubs: cfg.Pubs,
		Size: cfg.Size, Workers: k, P99BoundMs: ms(uint64(cfg.P99Bound))}
	pr := newProgress(stderr, cfg.Quiet, cfg.Subs+cfg.Pubs)
	c.progress = pr.print
	defer pr.done()

	t0 := time.Now()
	subs, pubs := split(cfg.Subs, k), split(cfg.Pubs, k)
	for i := range k {
		sc := cfg.baseSetup(cfg.Subs)
		sc.Channel, sc.PubTotal, sc.PubURLs = cfg.Channel, cfg.Pubs, cfg.PubURLs
		sc.Rooms, sc.RoomSize, sc.CrossEvery = cfg.Rooms, cfg.RoomSize, cfg.CrossEvery
		sc.SubFirst, sc.SubCount = subs[i].first, subs[i].count
		sc.PubFirst, sc.PubCount = pubs[i].first, pubs[i].count
		if err := c.send(i, command{Cmd: cmdSetup, Setup: &sc}); err != nil {
			return nil, err
		}
	}
	if rep.connectResult, err = awaitReady(ctx, c, t0); err != nil {
		return nil, err
	}
	if rep.Acked == 0 {
		return rep, fmt.Errorf("no subscriber got its ack (%d dial errors, %d subscribe errors)", rep.DialErrs, rep.SubErrs)
	}
	return rep, runSteps(ctx, c, cfg, rep, pr)
}

func runSteps(ctx context.Context, c *coord, cfg fanoutConfig, rep *fanoutReport, pr *progress) error {
	ends := make([]uint64, cfg.Pubs*cfg.channels())
	var disc int64 // disconnects seen before the step
	rate := cfg.Rate
	retried := 0
	for step := 1; ; step++ {
		pr.setStep(step, rate)
		res, newEnds, d, err := runStep(ctx, c, cfg, step, rate, ends, rep.Acked)
		if err != nil {
			return err
		}
		res.Disconnects, disc = d-disc, d
		ends = newEnds
		rep.Steps = append(rep.Steps, res)
		if !cfg.Ramp {
			return nil
		}
		if !res.OK && res.Lost <= 0 && retried < cfg.Retries {
			retried++ // a p99 spike: measure the same rate again before giving up
			continue
		}
		retried = 0
		switch {
		case !res.OK && res.Lost > 0:
			rep.Stopped = "loss"
		case !res.OK:
			rep.Stopped = "p99 over bound"
		case res.ClientBound:
			rep.Stopped = "publishers could not keep up (client-bound)"
		case step >= cfg.MaxSteps:
			rep.Stopped = "max steps"
		}
		if res.OK {
			rep.BestRate = res.TargetRate
		}
		if rep.Stopped != "" {
			return nil
		}
		rate = math.Round(rate * cfg.RampFactor)
	}
}

// runStep publishes at rate for the configured duration, waits for the
// deliveries to drain, then collects the step's counters.
func runStep(ctx context.Context, c *coord, cfg fanoutConfig, step int, rate float64, prev []uint64, acked int64) (stepResult, []uint64, int64, error) {
	res := stepResult{Step: step, TargetRate: rate, Seconds: cfg.Duration.Seconds()}
	crossBefore, crossOK := cfg.crossBytes(ctx)
	wpids := c.workerPIDs()
	cli0, cliOK := cpuOf(wpids)
	srv0, srvOK := cpuOf(cfg.ServerPIDs)
	rc := runCmd{Step: step, Rate: rate / float64(cfg.Pubs), Size: cfg.Size, DurMs: cfg.Duration.Milliseconds(),
		StartNs: time.Now().Add(100 * time.Millisecond).UnixNano()}
	if err := c.broadcast(command{Cmd: cmdRun, Run: &rc}); err != nil {
		return res, nil, 0, err
	}
	evs, err := c.waitAll(ctx, evPubDone)
	if err != nil {
		return res, nil, 0, err
	}
	nch := cfg.channels()
	ends := append([]uint64(nil), prev...)
	for _, e := range evs {
		for p, pe := range e.Ends {
			if p >= 0 && p < cfg.Pubs && len(pe) == nch {
				copy(ends[p*nch:], pe)
			}
		}
	}
	for i := range ends {
		res.Published += int64(ends[i] - prev[i])
	}
	// Every channel has the same number of subscribers; if some failed to
	// subscribe, the expectation assumes they were spread evenly.
	res.Expected = int64(math.Round(float64(res.Published) * float64(acked) / float64(nch)))
	lastAt, err := drain(ctx, c, res.Expected, cfg.Drain)
	if err != nil {
		return res, nil, 0, err
	}
	res.WallSec = max(lastAt.Sub(time.Unix(0, rc.StartNs)).Seconds(), res.Seconds)
	if err := c.broadcast(command{Cmd: cmdCollect, Ends: ends}); err != nil {
		return res, nil, 0, err
	}
	if evs, err = c.waitAll(ctx, evCollected); err != nil {
		return res, nil, 0, err
	}
	sum, h := mergeEvents(evs)
	fillStep(&res, sum, h, cfg)
	if rh := mergeHists(evs, func(e *event) *histJSON { return e.ReadHist }); rh != nil {
		res.ReadP50, res.ReadP90, res.ReadP99, res.ReadMax = ms(rh.Quantile(0.5)), ms(rh.Quantile(0.9)), ms(rh.Quantile(0.99)), ms(rh.Max())
		res.Unstamped, res.Coalesced = sum.Unstamped, sum.Coalesced
	}
	if lh := mergeHists(evs, func(e *event) *histJSON { return e.LocalHist }); lh != nil {
		res.Local = nodeLatencyOf(lh)
	}
	if rh := mergeHists(evs, func(e *event) *histJSON { return e.RemoteHist }); rh != nil {
		res.Remote = nodeLatencyOf(rh)
	}
	if cli1, ok := cpuOf(wpids); ok && cliOK && res.Received > 0 {
		res.ClientCPUus = (cli1 - cli0) * 1e6 / float64(res.Received)
	}
	if srv1, ok := cpuOf(cfg.ServerPIDs); ok && srvOK && res.Received > 0 {
		res.ServerCPUus = (srv1 - srv0) * 1e6 / float64(res.Received)
	}
	if after, ok := cfg.crossBytes(ctx); ok && crossOK {
		res.CrossBytes = after - crossBefore
		res.CrossPerPub = float64(res.CrossBytes) / float64(max(res.Published, 1))
		res.CrossPerDel = float64(res.CrossBytes) / float64(max(res.Received, 1))
	}
	return res, ends, sum.Disconnects, nil
}

// nodeLatency is the latency of one group of deliveries.
type nodeLatency struct {
	Deliveries uint64  `json:"deliveries"`
	P50        float64 `json:"p50ms"`
	P99        float64 `json:"p99ms"`
	Max        float64 `json:"maxms"`
}

func nodeLatencyOf(h *Hist) *nodeLatency {
	return &nodeLatency{Deliveries: h.Count(), P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}

func fillStep(res *stepResult, sum event, h *Hist, cfg fanoutConfig) {
	secs := cfg.Duration.Seconds()
	res.PubPerSec = float64(res.Published) / secs
	res.Received, res.Lost, res.Dups, res.Reordered, res.Foreign = sum.Received, sum.Lost, sum.Dups, sum.Reordered, sum.Foreign
	// Deliveries that queued up arrive after the publishing ended: divide
	// by the time they took to arrive, not by the publishing time.
	res.DelivPerSec = float64(sum.Received) / res.WallSec
	res.PubErrs = sum.PubErrs
	res.P50, res.P90, res.P99 = ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99))
	res.Max, res.Mean = ms(h.Max()), h.Mean()/1e6
	// Each publisher sends whole messages: compare with what was
	// scheduled, not rate*secs, or low rates look client-bound.
	scheduled := int64(cfg.Pubs) * int64(res.TargetRate/float64(cfg.Pubs)*secs)
	res.ClientBound = float64(res.Published) < 0.95*float64(scheduled)
	res.OK = res.Lost <= 0 && res.Dups == 0 && res.Received > 0 &&
		time.Duration(h.Quantile(0.99)) <= cfg.P99Bound
}

// drain waits until every expected delivery arrived, or nothing arrived
// for a second, or the drain limit passed, and returns when the count last
// changed.
func drain(ctx context.Context, c *coord, expected int64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	last, lastChange := int64(-1), time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		evs, err := c.poll(ctx)
		if err != nil {
			return lastChange, err
		}
		sum, _ := mergeEvents(evs)
		got := sum.Received + sum.Dups
		if got != last {
			last, lastChange = got, time.Now()
		}
		if sum.Received >= expected || time.Since(lastChange) > time.Second {
			return lastChange, nil
		}
		select {
		case <-ctx.Done():
			return lastChange, ctx.Err()
		case <-t.C:
		}
	}
	return lastChange, nil
}

func ms(ns uint64) float64 { return float64(ns) / 1e6 }

// rampDefaults fills the ramp settings a scenario left unset: rates grow
// 25% a step, for at most 20 steps, while p99 stays within 250 ms.
func rampDefaults(factor *float64, steps *int, p99 *time.Duration) {
	if *factor <= 1 {
		*factor = 1.25
	}
	if *steps <= 0 {
		*steps = 20
	}
	if *p99 <= 0 {
		*p99 = 250 * time.Millisecond
	}
}
