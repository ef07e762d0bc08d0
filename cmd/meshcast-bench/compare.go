package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

type compareConfig struct {
	Mesh       meshcastOpts
	Peer       peerOpts
	Scenarios  []string
	Rounds     int
	Step       time.Duration // ramp step duration
	RampFactor float64
	MeshStart  float64 // fanout ramp start, publishes/s
	PeerStart  float64
	Subs, Pubs int
	Size       int
	P99Bound   time.Duration
	Rooms      int
	RoomSize   int
	RoomsRate  float64
	Cross      float64
	IdleConns  int
	ChurnStart float64
	ChurnStep  time.Duration
	OutDir     string // raw JSON lines and the table go here ("" none)
	Quiet      bool
}

// comparer runs each scenario against both systems, alternating meshcast,
// peer, meshcast, peer, on fresh clusters, and collects the figures.
type comparer struct {
	cfg    compareConfig
	stderr io.Writer
	raw    io.Writer // JSON lines of every run
	rows   []figure
}

// figure is one line of the comparison table; values are per round.
type figure struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Mesh   []float64 `json:"meshcast"`
	Peer   []float64 `json:"peer"`
	Target string    `json:"target,omitempty"` // e.g. ">= 9x", "<= 1/5"
	Want   float64   `json:"-"`                // target ratio meshcast/peer
	Higher bool      `json:"-"`                // meshcast must be at least Want times the peer (else at most)
	AbsMin float64   `json:"-"`                // or: meshcast's own figure must be at least this
}

func (f figure) median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is median(meshcast)/median(peer).
func (f figure) ratio() float64 { return f.median(f.Mesh) / f.median(f.Peer) }

// met reports whether the target holds; ok is false without a target.
func (f figure) met() (met, ok bool) {
	if f.AbsMin > 0 {
		return f.median(f.Mesh) >= f.AbsMin, true
	}
	if f.Want == 0 {
		return false, false
	}
	r := f.ratio()
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return false, true
	}
	if f.Higher {
		return r >= f.Want, true
	}
	return r <= f.Want, true
}

func (cp *comparer) logf(format string, a ...any) {
	fmt.Fprintf(cp.stderr, "compare: "+format+"\n", a...)
}

func (cp *comparer) record(system, scenario string, round int, v any) {
	if cp.raw == nil {
		return
	}
	b, _ := json.Marshal(map[string]any{"system": system, "scenario": scenario, "round": round, "result": v})
	fmt.Fprintf(cp.raw, "%s\n", b)
}

// withCluster starts system ("meshcast" or "peer") with n nodes, runs fn
// and stops the cluster whatever happens.
func (cp *comparer) withCluster(ctx context.Context, system string, n int, fn func(*cluster) error) error {
	var cl *cluster
	var err error
	if system == "meshcast" {
		cl, err = startMeshcast(ctx, cp.cfg.Mesh, n, cp.stderr)
	} else {
		cl, err = startPeer(ctx, cp.cfg.Peer, n, cp.stderr)
	}
	if err != nil {
		return err
	}
	defer cl.Stop()
	return fn(cl)
}

func (cp *comparer) connConfig(cl *cluster, urls []string) connConfig {
	return connConfig{URLs: urls, Proto: cl.Proto, PerWorker: 5000, DialConc: 64, DialTimeout: 10 * time.Second,
		AckTimeout: 15 * time.Second, Quiet: cp.cfg.Quiet}
}

// run executes every requested scenario; a failing scenario is logged and
// the next one runs.
func (cp *comparer) run(ctx context.Context) error {
	steps := map[string]func(context.Context) error{
		"fanout1": func(ctx context.Context) error { return cp.fanout(ctx, 1) },
		"fanout3": func(ctx context.Context) error { return cp.fanout(ctx, 3) },
		"rooms":   cp.rooms,
		"idle":    cp.idle,
		"churn":   cp.churn,
	}
	var firstErr error
	for _, s := range cp.cfg.Scenarios {
		fn, ok := steps[s]
		if !ok {
			return fmt.Errorf("unknown compare scenario %q (want fanout1, fanout3, rooms, idle, churn)", s)
		}
		if err := fn(ctx); err != nil {
			cp.logf("%s: %v", s, err)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s, err)
			}
			if ctx.Err() != nil {
				return firstErr
			}
		}
	}
	return firstErr
}

var systems = []string{"meshcast", "peer"}

func (cp *comparer) fanoutConfig(cl *cluster, rate float64, ramp bool) fanoutConfig {
	c := cp.cfg
	return fanoutConfig{connConfig: cp.connConfig(cl, cl.URLs), Subs: c.Subs, Pubs: c.Pubs, Rate: rate, Size: c.Size,
		Duration: c.Step, Channel: "bench", Ramp: ramp, RampFactor: c.RampFactor, MaxSteps: 30, P99Bound: c.P99Bound,
		Retries: 1}
}

// fanout ramps both systems, then measures both at the peer's best rate.
func (cp *comparer) fanout(ctx context.Context, nodes int) error {
	name := fmt.Sprintf("fanout %d node(s), %d subs", nodes, cp.cfg.Subs)
	best := figure{Name: name + ": highest zero-loss rate (p99 <= bound)", Unit: "pub/s"}
	p99 := figure{Name: name + ": p99 at the peer's highest rate", Unit: "ms"}
	if nodes == 3 {
		best.Target, best.Want, best.Higher = ">= 9x", 9, true
		p99.Target, p99.Want = "<= 1/5", 0.2
	}
	for round := 1; round <= cp.cfg.Rounds; round++ {
		for _, sys := range systems {
			start := cp.cfg.MeshStart
			if sys == "peer" {
				start = cp.cfg.PeerStart
			}
			var rate float64
			err := cp.withCluster(ctx, sys, nodes, func(cl *cluster) error {
				var err error
				rate, err = cp.rampFanout(ctx, sys, cl, start, round)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s ramp: %w", sys, err)
			}
			cp.logf("%s round %d %s: best %.0f pub/s", name, round, sys, rate)
			if sys == "meshcast" {
				best.Mesh = append(best.Mesh, rate)
			} else {
				best.Peer = append(best.Peer, rate)
			}
		}
	}
	peerRate := best.median(best.Peer)
	if peerRate > 0 {
		for round := 1; round <= cp.cfg.Rounds; round++ {
			for _, sys := range systems {
				err := cp.withCluster(ctx, sys, nodes, func(cl *cluster) error {
					rep, err := runFanout(ctx, cp.fanoutConfig(cl, peerRate, false), cp.stderr)
					cp.record(sys, fmt.Sprintf("fanout%d-at-peer-rate", nodes), round, rep)
					if err != nil {
						return err
					}
					v := rep.Steps[0].P99
					if sys == "meshcast" {
						p99.Mesh = append(p99.Mesh, v)
					} else {
						p99.Peer = append(p99.Peer, v)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("%s at %.0f pub/s: %w", sys, peerRate, err)
				}
			}
		}
	}
	cp.rows = append(cp.rows, best, p99)
	return nil
}

// rampFanout ramps from start; if even the first step fails it starts
// again from a quarter of the rate (twice at most), so a too-high start
// costs a little time instead of the figure.
func (cp *comparer) rampFanout(ctx context.Context, sys string, cl *cluster, start float64, round int) (float64, error) {
	for try := 0; try < 3; try++ {
		rep, err := runFanout(ctx, cp.fanoutConfig(cl, start, true), cp.stderr)
		cp.record(sys, fmt.Sprintf("fanout%d-ramp", len(cl.URLs)), round, rep)
		if err != nil {
			return 0, err
		}
		if rep.BestRate > 0 || start < 2 {
			return rep.BestRate, nil
		}
		start = math.Max(1, math.Round(start/4))
		cp.logf("%s: first step failed, ramping again from %.0f pub/s", sys, start)
	}
	return 0, nil
}

// rooms publishes at a fixed rate both systems sustain and compares the
// bytes that crossed between nodes per delivered message.
func (cp *comparer) rooms(ctx context.Context) error {
	c := cp.cfg
	name := fmt.Sprintf("rooms %d x %d on 3 nodes, %.0f pub/s", c.Rooms, c.RoomSize, c.RoomsRate)
	bytes := figure{Name: name + ": cross-node bytes per delivery", Unit: "B", Target: "<= 1/3", Want: 1.0 / 3}
	dps := figure{Name: name + ": deliveries/s", Unit: "/s"}
	p99 := figure{Name: name + ": p99", Unit: "ms"}
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range systems {
			err := cp.withCluster(ctx, sys, 3, func(cl *cluster) error {
				fc := fanoutConfig{connConfig: cp.connConfig(cl, cl.URLs), Pubs: 3, Rate: c.RoomsRate, Size: c.Size,
					Duration: c.Step, Channel: "room", Rooms: c.Rooms, RoomSize: c.RoomSize, Subs: c.Rooms * c.RoomSize,
					P99Bound: c.P99Bound, ClusterURLs: cl.ClusterURLs, RedisAddr: cl.RedisAddr}
				if c.Cross > 0 {
					fc.CrossEvery = max(1, int(math.Round(1/c.Cross)))
				}
				rep, err := runFanout(ctx, fc, cp.stderr)
				cp.record(sys, "rooms", round, rep)
				if err != nil {
					return err
				}
				s := rep.Steps[0]
				cp.add(sys, &bytes, s.CrossPerDel)
				cp.add(sys, &dps, s.DelivPerSec)
				cp.add(sys, &p99, s.P99)
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: %w", sys, err)
			}
		}
	}
	cp.rows = append(cp.rows, bytes, dps, p99)
	return nil
}

func (cp *comparer) add(sys string, f *figure, v float64) {
	if sys == "meshcast" {
		f.Mesh = append(f.Mesh, v)
	} else {
		f.Peer = append(f.Peer, v)
	}
}

// idle compares the RSS per idle connection of one node: a single
// meshcast node, and one Socket.IO node (with its Redis, not counted).
func (cp *comparer) idle(ctx context.Context) error {
	c := cp.cfg
	f := figure{Name: fmt.Sprintf("idle: RSS per connection, %d conns on one node", c.IdleConns), Unit: "KiB",
		Target: "<= 1/5", Want: 0.2}
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range systems {
			err := cp.withCluster(ctx, sys, 1, func(cl *cluster) error {
				ic := idleConfig{connConfig: cp.connConfig(cl, cl.URLs[:1]), Conns: c.IdleConns, PIDs: cl.PIDs[:1],
					StatsURLs: cl.StatsURLs, Hold: 10 * time.Second}
				rep, err := runIdle(ctx, ic, cp.stderr)
				cp.record(sys, "idle", round, rep)
				if err != nil {
					return err
				}
				if rep.Acked < int64(c.IdleConns) {
					cp.logf("idle %s: only %d of %d subscribed", sys, rep.Acked, c.IdleConns)
				}
				cp.add(sys, &f, rep.KiBPerConn)
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: %w", sys, err)
			}
		}
	}
	cp.rows = append(cp.rows, f)
	return nil
}

// churn ramps connect+subscribe+close on one node of each system.
func (cp *comparer) churn(ctx context.Context) error {
	c := cp.cfg
	f := figure{Name: "churn: highest sustained upgrades/s, one node", Unit: "/s", Target: "meshcast >= 5000/s", AbsMin: 5000}
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range systems {
			err := cp.withCluster(ctx, sys, 1, func(cl *cluster) error {
				cc := churnConfig{connConfig: cp.connConfig(cl, cl.URLs[:1]), Rate: c.ChurnStart, Duration: c.ChurnStep,
					Sources: 64, Channels: 100, Ramp: true, RampFactor: c.RampFactor, MaxSteps: 30, P99Bound: c.P99Bound}
				rep, err := runChurn(ctx, cc, cp.stderr)
				cp.record(sys, "churn", round, rep)
				if err != nil {
					return err
				}
				cp.add(sys, &f, rep.BestRate)
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: %w", sys, err)
			}
		}
	}
	cp.rows = append(cp.rows, f)
	return nil
}

// openOutputs creates the raw JSON-lines file and returns it with the path
// prefix the table goes to.
func openOutputs(dir string, now time.Time) (*os.File, string, error) {
	if dir == "" {
		return nil, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	prefix := filepath.Join(dir, "compare-"+now.Format("2006-01-02T1504"))
	f, err := os.Create(prefix + ".jsonl")
	return f, prefix, err
}
