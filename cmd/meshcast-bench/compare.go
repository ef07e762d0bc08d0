package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type compareConfig struct {
	Mesh       meshcastOpts
	Peer       peerOpts // Socket.IO + Redis (peer.sh)
	Cf         peerOpts // Centrifugo (centrifugo.sh)
	Systems    []string // in the order they alternate within a round
	Scenarios  []string
	Rounds     int
	Step       time.Duration // ramp step duration
	RampFactor float64
	MeshStart  float64 // fanout ramp start, publishes/s
	PeerStart  float64
	CfStart    float64
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

// The systems compare can run, by the names --systems takes.
const (
	sysMeshcast   = "meshcast"
	sysSocketIO   = "socketio"
	sysCentrifugo = "centrifugo"
)

var allSystems = []string{sysMeshcast, sysSocketIO, sysCentrifugo}

// targetPeer is the system the issue 4 targets are stated against.
const targetPeer = sysSocketIO

// comparer runs each scenario against every chosen system, alternating
// them in each round (A B C A B C), on fresh clusters, and collects the
// figures.
type comparer struct {
	cfg    compareConfig
	stderr io.Writer
	raw    io.Writer // JSON lines of every run
	rows   []figure
}

// figure is one line of the comparison table: per system, its value in
// each round.
type figure struct {
	Name   string               `json:"name"`
	Unit   string               `json:"unit"`
	Vals   map[string][]float64 `json:"values"`
	Target string               `json:"target,omitempty"` // against targetPeer, e.g. ">= 9x", "<= 1/5"
	Want   float64              `json:"-"`                // target ratio meshcast/targetPeer
	Higher bool                 `json:"-"`                // meshcast must be at least Want times the peer (else at most)
	AbsMin float64              `json:"-"`                // or: meshcast's own figure must be at least this
}

func (f *figure) add(sys string, v float64) {
	if f.Vals == nil {
		f.Vals = map[string][]float64{}
	}
	f.Vals[sys] = append(f.Vals[sys], v)
}

// med is the median of sys's rounds, NaN without any.
func (f figure) med(sys string) float64 { return median(f.Vals[sys]) }

func median(v []float64) float64 {
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

// ratio is median(meshcast)/median(sys).
func (f figure) ratio(sys string) float64 { return f.med(sysMeshcast) / f.med(sys) }

// met reports whether the target holds; ok is false without a target.
func (f figure) met() (met, ok bool) {
	if f.AbsMin > 0 {
		return f.med(sysMeshcast) >= f.AbsMin, true
	}
	if f.Want == 0 {
		return false, false
	}
	r := f.ratio(targetPeer)
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

// withCluster starts system with n nodes, runs fn and stops the cluster
// whatever happens.
func (cp *comparer) withCluster(ctx context.Context, system string, n int, fn func(*cluster) error) error {
	var cl *cluster
	var err error
	switch system {
	case sysMeshcast:
		cl, err = startMeshcast(ctx, cp.cfg.Mesh, n, cp.stderr)
	case sysSocketIO:
		cl, err = startPeer(ctx, cp.cfg.Peer, n, cp.stderr)
	case sysCentrifugo:
		cl, err = startCentrifugo(ctx, cp.cfg.Cf, n, cp.stderr)
	default:
		err = fmt.Errorf("unknown system %q", system)
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

var compareScenarios = []string{"fanout1", "fanout3", "rooms", "idle", "churn"}

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
			return fmt.Errorf("unknown compare scenario %q (want %s)", s, strings.Join(compareScenarios, ", "))
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

func (cp *comparer) fanoutConfig(cl *cluster, rate float64, ramp bool) fanoutConfig {
	c := cp.cfg
	return fanoutConfig{connConfig: cp.connConfig(cl, cl.URLs), Subs: c.Subs, Pubs: c.Pubs, Rate: rate, Size: c.Size,
		Duration: c.Step, Channel: "bench", Ramp: ramp, RampFactor: c.RampFactor, MaxSteps: 30, P99Bound: c.P99Bound,
		Retries: 1}
}

func (cp *comparer) rampStart(sys string) float64 {
	switch sys {
	case sysSocketIO:
		return cp.cfg.PeerStart
	case sysCentrifugo:
		return cp.cfg.CfStart
	}
	return cp.cfg.MeshStart
}

// fanout ramps every system, then measures the p99 of every system at
// each peer's highest rate: all systems that sustained that rate in their
// own ramps run at it, alternating, so each peer is compared with meshcast
// at a rate the peer can carry.
func (cp *comparer) fanout(ctx context.Context, nodes int) error {
	name := fmt.Sprintf("fanout %d node(s), %d subs", nodes, cp.cfg.Subs)
	var errs []error
	best := figure{Name: name + ": highest zero-loss rate (p99 <= bound)", Unit: "pub/s"}
	if nodes == 3 {
		best.Target, best.Want, best.Higher = ">= 9x", 9, true
	}
	for round := 1; round <= cp.cfg.Rounds; round++ {
		for _, sys := range cp.cfg.Systems {
			var rate float64
			err := cp.withCluster(ctx, sys, nodes, func(cl *cluster) error {
				var err error
				rate, err = cp.rampFanout(ctx, sys, cl, cp.rampStart(sys), round)
				return err
			})
			if err != nil {
				errs = cp.failed(errs, fmt.Errorf("%s round %d %s ramp: %w", name, round, sys, err))
				continue
			}
			cp.logf("%s round %d %s: best %.0f pub/s", name, round, sys, rate)
			best.add(sys, rate)
		}
	}
	cp.rows = append(cp.rows, best)
	for _, peer := range cp.cfg.Systems {
		rate := best.med(peer)
		if peer == sysMeshcast || !(rate > 0) {
			continue
		}
		p99 := figure{Name: fmt.Sprintf("%s: p99 at %s's highest rate (%s pub/s)", name, peer, fmtNum(rate)), Unit: "ms"}
		if nodes == 3 && peer == targetPeer {
			p99.Target, p99.Want = "<= 1/5", 0.2
		}
		for round := 1; round <= cp.cfg.Rounds; round++ {
			for _, sys := range cp.cfg.Systems {
				if sys != peer && !(best.med(sys) >= rate) {
					continue // it did not sustain this rate in its ramp
				}
				err := cp.withCluster(ctx, sys, nodes, func(cl *cluster) error {
					rep, err := runFanout(ctx, cp.fanoutConfig(cl, rate, false), cp.stderr)
					cp.record(sys, fmt.Sprintf("fanout%d-at-%s-rate", nodes, peer), round, rep)
					if err != nil {
						return err
					}
					p99.add(sys, rep.Steps[0].P99)
					return nil
				})
				if err != nil {
					errs = cp.failed(errs, fmt.Errorf("%s round %d %s at %.0f pub/s: %w", name, round, sys, rate, err))
				}
			}
		}
		cp.rows = append(cp.rows, p99)
	}
	return errors.Join(errs...)
}

// failed logs a failed run and adds it to errs: one system failing a run
// leaves its cell n/a, the other systems' figures still count.
func (cp *comparer) failed(errs []error, err error) []error {
	cp.logf("%v", err)
	return append(errs, err)
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
	var errs []error
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range c.Systems {
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
				bytes.add(sys, s.CrossPerDel)
				dps.add(sys, s.DelivPerSec)
				p99.add(sys, s.P99)
				return nil
			})
			if err != nil {
				errs = cp.failed(errs, fmt.Errorf("round %d %s: %w", round, sys, err))
			}
		}
	}
	cp.rows = append(cp.rows, bytes, dps, p99)
	return errors.Join(errs...)
}

// idle compares the RSS per idle connection of one node: a single
// meshcast node, one Socket.IO node (with its Redis, not counted) and one
// Centrifugo node (memory engine).
func (cp *comparer) idle(ctx context.Context) error {
	c := cp.cfg
	f := figure{Name: fmt.Sprintf("idle: RSS per connection, %d conns on one node", c.IdleConns), Unit: "KiB",
		Target: "<= 1/5", Want: 0.2}
	var errs []error
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range c.Systems {
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
				f.add(sys, rep.KiBPerConn)
				return nil
			})
			if err != nil {
				errs = cp.failed(errs, fmt.Errorf("round %d %s: %w", round, sys, err))
			}
		}
	}
	cp.rows = append(cp.rows, f)
	return errors.Join(errs...)
}

// churn ramps connect+subscribe+close on one node of each system.
func (cp *comparer) churn(ctx context.Context) error {
	c := cp.cfg
	f := figure{Name: "churn: highest sustained upgrades/s, one node", Unit: "/s", Target: "meshcast >= 5000/s", AbsMin: 5000}
	var errs []error
	for round := 1; round <= c.Rounds; round++ {
		for _, sys := range c.Systems {
			err := cp.withCluster(ctx, sys, 1, func(cl *cluster) error {
				cc := churnConfig{connConfig: cp.connConfig(cl, cl.URLs[:1]), Rate: c.ChurnStart, Duration: c.ChurnStep,
					Sources: 64, Channels: 100, Ramp: true, RampFactor: c.RampFactor, MaxSteps: 30, P99Bound: c.P99Bound}
				rep, err := runChurn(ctx, cc, cp.stderr)
				cp.record(sys, "churn", round, rep)
				if err != nil {
					return err
				}
				f.add(sys, rep.BestRate)
				return nil
			})
			if err != nil {
				errs = cp.failed(errs, fmt.Errorf("round %d %s: %w", round, sys, err))
			}
		}
	}
	cp.rows = append(cp.rows, f)
	return errors.Join(errs...)
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
