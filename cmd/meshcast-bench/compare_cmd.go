package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c compareConfig
	var scen, systems string
	var timeout time.Duration
	fs.StringVar(&c.Mesh.Bin, "meshcast-bin", "", "meshcast binary (default: go build ./cmd/meshcast of the module above the working directory)")
	fs.IntVar(&c.Mesh.BasePort, "meshcast-port", 28080, "node i: HTTP port+i, gossip port+100+2i, peer links port+101+2i, on 127.0.0.1")
	fs.StringVar(&c.Mesh.Secret, "meshcast-secret", "", "cluster secret of the meshcast nodes (default: a random one)")
	fs.StringVar(&c.Peer.Script, "peer-script", "", "peer.sh (default: cmd/meshcast-bench/peer/peer.sh of the module)")
	fs.IntVar(&c.Peer.BasePort, "peer-port", 3001, "Socket.IO node i listens on port+i")
	fs.IntVar(&c.Peer.RedisPort, "redis-port", 6390, "the Socket.IO peer's Redis port")
	fs.StringVar(&c.Cf.Script, "centrifugo-script", "", "centrifugo.sh (default: cmd/meshcast-bench/peer/centrifugo.sh of the module)")
	fs.IntVar(&c.Cf.BasePort, "centrifugo-port", 8101, "Centrifugo node i listens on port+i")
	fs.IntVar(&c.Cf.RedisPort, "centrifugo-redis-port", 6391, "the Redis port of 3 Centrifugo nodes (1 node uses the memory engine)")
	fs.StringVar(&systems, "systems", strings.Join(allSystems, ","), "comma-separated systems, in the order they alternate in each round: "+strings.Join(allSystems, ", "))
	fs.StringVar(&scen, "scenarios", "fanout1,fanout3,rooms,idle,churn", "comma-separated: fanout1, fanout3, rooms, idle, churn")
	fs.IntVar(&c.Rounds, "rounds", 2, "rounds; each runs every system once, alternating (A B C A B C ...)")
	fs.DurationVar(&c.Step, "step", 10*time.Second, "publishing time per ramp step")
	fs.Float64Var(&c.RampFactor, "ramp-factor", 1.25, "rate multiplier between ramp steps")
	fs.Float64Var(&c.MeshStart, "meshcast-start", 40, "meshcast fanout ramp's first rate, publishes/s")
	fs.Float64Var(&c.PeerStart, "peer-start", 4, "Socket.IO fanout ramp's first rate, publishes/s")
	fs.Float64Var(&c.CfStart, "centrifugo-start", 20, "Centrifugo fanout ramp's first rate, publishes/s")
	fs.IntVar(&c.Subs, "subs", 3000, "fanout subscribers")
	fs.IntVar(&c.Pubs, "pubs", 3, "fanout publishers (round-robin over the nodes)")
	fs.IntVar(&c.Size, "size", 100, "payload bytes")
	fs.DurationVar(&c.P99Bound, "p99-bound", 250*time.Millisecond, "highest acceptable p99")
	fs.IntVar(&c.Rooms, "rooms", 1000, "rooms scenario: channels")
	fs.IntVar(&c.RoomSize, "room-size", 3, "rooms scenario: subscribers per channel")
	fs.Float64Var(&c.RoomsRate, "rooms-rate", 100, "rooms scenario: publishes/s (every system must sustain it)")
	fs.Float64Var(&c.Cross, "cross", 0.1, "rooms scenario: fraction of rooms spread over all nodes")
	fs.IntVar(&c.IdleConns, "idle-conns", 15000, "idle scenario: connections to one node")
	fs.Float64Var(&c.ChurnStart, "churn-start", 500, "churn ramp's first rate, connections/s")
	fs.DurationVar(&c.ChurnStep, "churn-step", 5*time.Second, "time per churn step")
	fs.StringVar(&c.OutDir, "out", "", "directory for the raw results (compare-<date>.jsonl) and the table (compare-<date>.txt)")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines")
	fs.DurationVar(&timeout, "timeout", 2*time.Hour, "hard limit of the whole comparison")
	err := fs.Parse(args)
	if err != nil {
		return err
	}
	c.Scenarios = splitList(scen)
	c.Rounds = max(c.Rounds, 1)
	if c.Systems, err = parseSystems(systems); err != nil {
		return err
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(compareScenarios, s) {
			return fmt.Errorf("unknown compare scenario %q (want %s)", s, strings.Join(compareScenarios, ", "))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := locateSystems(ctx, &c, stderr); err != nil {
		return err
	}
	now := time.Now()
	raw, prefix, err := openOutputs(c.OutDir, now)
	if err != nil {
		return err
	}
	cp := &comparer{cfg: c, stderr: stderr}
	if raw != nil {
		defer raw.Close()
		cp.raw = raw
	}
	runErr := cp.run(ctx)
	var table strings.Builder
	fmt.Fprintf(&table, "meshcast-bench compare, %s, %d rounds (%s in turn in each round; fresh clusters per run)\n",
		now.Format(time.RFC3339), c.Rounds, strings.Join(c.Systems, ", "))
	for _, sys := range c.Systems {
		if d := systemNotes[sys]; d != "" {
			fmt.Fprintf(&table, "%s: %s\n", sys, d)
		}
	}
	fmt.Fprintf(&table, "step %s, ramp x%.2f, p99 bound %s\n", c.Step, c.RampFactor, c.P99Bound)
	printCompare(&table, c.Systems, cp.rows)
	fmt.Fprint(stdout, table.String())
	if prefix != "" {
		if err := os.WriteFile(prefix+".txt", []byte(table.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "compare: raw results in %s.jsonl, table in %s.txt\n", prefix, prefix)
	}
	return runErr
}

var systemNotes = map[string]string{
	sysSocketIO:   "socket.io + @socket.io/redis-adapter + redis (peer/package-lock.json, peer/peer.sh)",
	sysCentrifugo: "Centrifugo (peer/centrifugo.sh: go install of $CF_VERSION, default v6.9.1; peer/centrifugo.json): memory engine on 1 node, Redis engine on 3",
}

// parseSystems checks a --systems list: known names, each once.
func parseSystems(s string) ([]string, error) {
	list := splitList(s)
	if len(list) == 0 {
		return nil, fmt.Errorf("--systems: none given (want some of %s)", strings.Join(allSystems, ", "))
	}
	seen := map[string]bool{}
	for _, sys := range list {
		if !slices.Contains(allSystems, sys) {
			return nil, fmt.Errorf("--systems: unknown system %q (want %s)", sys, strings.Join(allSystems, ", "))
		}
		if seen[sys] {
			return nil, fmt.Errorf("--systems: %q twice", sys)
		}
		seen[sys] = true
	}
	return list, nil
}

// locateSystems finds (or builds) the meshcast binary and the peers'
// scripts, and installs the chosen peers before the first measurement.
func locateSystems(ctx context.Context, c *compareConfig, stderr io.Writer) error {
	uses := func(sys string) bool { return slices.Contains(c.Systems, sys) }
	if (c.Mesh.Bin == "" && uses(sysMeshcast)) || c.Peer.Script == "" || c.Cf.Script == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		root, err := moduleRoot(wd)
		if err != nil {
			return err
		}
		if c.Peer.Script == "" {
			c.Peer.Script = filepath.Join(root, "cmd", "meshcast-bench", "peer", "peer.sh")
		}
		if c.Cf.Script == "" {
			c.Cf.Script = filepath.Join(root, "cmd", "meshcast-bench", "peer", "centrifugo.sh")
		}
		if c.Mesh.Bin == "" && uses(sysMeshcast) {
			dir, err := os.MkdirTemp("", "meshcast-bench-")
			if err != nil {
				return err
			}
			// The binary stays until the run ends: removing it is safe once
			// the nodes have started, but simplest at exit.
			context.AfterFunc(ctx, func() { _ = os.RemoveAll(dir) })
			fmt.Fprintf(stderr, "compare: building meshcast from %s\n", root)
			if c.Mesh.Bin, err = buildMeshcast(ctx, root, dir, stderr); err != nil {
				return err
			}
		}
	}
	for _, p := range []struct{ sys, script string }{{sysSocketIO, c.Peer.Script}, {sysCentrifugo, c.Cf.Script}} {
		if uses(p.sys) {
			if err := installPeer(ctx, p.script, stderr); err != nil {
				return err
			}
		}
	}
	return nil
}

// printCompare writes one column per system and the ratio of meshcast to
// every other system; the target column is against targetPeer.
func printCompare(w io.Writer, systems []string, rows []figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var peers []string
	head := []string{"figure", "unit"}
	head = append(head, systems...)
	if slices.Contains(systems, sysMeshcast) {
		for _, sys := range systems {
			if sys != sysMeshcast {
				peers = append(peers, sys)
				head = append(head, "meshcast/"+sys)
			}
		}
	}
	head = append(head, "target (vs "+targetPeer+")", "met")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, f := range rows {
		met := ""
		if m, ok := f.met(); ok {
			met = "yes"
			if !m {
				met = "NO"
			}
		}
		cols := []string{f.Name, f.Unit}
		for _, sys := range systems {
			cols = append(cols, fmtRounds(f.Vals[sys]))
		}
		for _, sys := range peers {
			cols = append(cols, fmtRatio(f.ratio(sys)))
		}
		cols = append(cols, f.Target, met)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "values: median of the rounds, each round in brackets; n/a: not measured (e.g. a rate the system did not sustain)")
}

func fmtRounds(v []float64) string {
	if len(v) == 0 {
		return "n/a"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmtNum(x)
	}
	return fmt.Sprintf("%s [%s]", fmtNum(median(v)), strings.Join(parts, " "))
}

func fmtNum(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func fmtRatio(r float64) string {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return "n/a"
	case r >= 1:
		return fmt.Sprintf("%.2fx", r)
	}
	return fmt.Sprintf("%.3f (1/%.1f)", r, 1/r)
}
