package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c compareConfig
	var scen string
	var timeout time.Duration
	fs.StringVar(&c.Mesh.Bin, "meshcast-bin", "", "meshcast binary (default: go build ./cmd/meshcast of the module above the working directory)")
	fs.IntVar(&c.Mesh.BasePort, "meshcast-port", 28080, "node i: HTTP port+i, gossip port+100+2i, peer links port+101+2i, on 127.0.0.1")
	fs.StringVar(&c.Mesh.Secret, "meshcast-secret", "", "cluster secret of the meshcast nodes (default: a random one)")
	fs.StringVar(&c.Peer.Script, "peer-script", "", "peer.sh (default: cmd/meshcast-bench/peer/peer.sh of the module)")
	fs.IntVar(&c.Peer.BasePort, "peer-port", 3001, "Socket.IO node i listens on port+i")
	fs.IntVar(&c.Peer.RedisPort, "redis-port", 6390, "the peer's Redis port")
	fs.StringVar(&scen, "scenarios", "fanout1,fanout3,rooms,idle,churn", "comma-separated: fanout1, fanout3, rooms, idle, churn")
	fs.IntVar(&c.Rounds, "rounds", 2, "rounds of meshcast then peer (A B A B ...)")
	fs.DurationVar(&c.Step, "step", 10*time.Second, "publishing time per ramp step")
	fs.Float64Var(&c.RampFactor, "ramp-factor", 1.25, "rate multiplier between ramp steps")
	fs.Float64Var(&c.MeshStart, "meshcast-start", 40, "meshcast fanout ramp's first rate, publishes/s")
	fs.Float64Var(&c.PeerStart, "peer-start", 4, "peer fanout ramp's first rate, publishes/s")
	fs.IntVar(&c.Subs, "subs", 3000, "fanout subscribers")
	fs.IntVar(&c.Pubs, "pubs", 3, "fanout publishers (round-robin over the nodes)")
	fs.IntVar(&c.Size, "size", 100, "payload bytes")
	fs.DurationVar(&c.P99Bound, "p99-bound", 250*time.Millisecond, "highest acceptable p99")
	fs.IntVar(&c.Rooms, "rooms", 1000, "rooms scenario: channels")
	fs.IntVar(&c.RoomSize, "room-size", 3, "rooms scenario: subscribers per channel")
	fs.Float64Var(&c.RoomsRate, "rooms-rate", 100, "rooms scenario: publishes/s (both systems must sustain it)")
	fs.Float64Var(&c.Cross, "cross", 0.1, "rooms scenario: fraction of rooms spread over all nodes")
	fs.IntVar(&c.IdleConns, "idle-conns", 15000, "idle scenario: connections to one node")
	fs.Float64Var(&c.ChurnStart, "churn-start", 500, "churn ramp's first rate, connections/s")
	fs.DurationVar(&c.ChurnStep, "churn-step", 5*time.Second, "time per churn step")
	fs.StringVar(&c.OutDir, "out", "", "directory for the raw results (compare-<date>.jsonl) and the table (compare-<date>.txt)")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines")
	fs.DurationVar(&timeout, "timeout", 2*time.Hour, "hard limit of the whole comparison")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Scenarios = splitList(scen)
	c.Rounds = max(c.Rounds, 1)
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
	fmt.Fprintf(&table, "meshcast-bench compare, %s, %d rounds (meshcast then peer, alternating; fresh clusters per run)\n",
		now.Format(time.RFC3339), c.Rounds)
	fmt.Fprintf(&table, "peer: socket.io + @socket.io/redis-adapter + redis (peer/package-lock.json); step %s, ramp x%.2f, p99 bound %s\n",
		c.Step, c.RampFactor, c.P99Bound)
	printCompare(&table, cp.rows)
	fmt.Fprint(stdout, table.String())
	if prefix != "" {
		if err := os.WriteFile(prefix+".txt", []byte(table.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "compare: raw results in %s.jsonl, table in %s.txt\n", prefix, prefix)
	}
	return runErr
}

// locateSystems finds (or builds) the meshcast binary and peer.sh.
func locateSystems(ctx context.Context, c *compareConfig, stderr io.Writer) error {
	if c.Mesh.Bin != "" && c.Peer.Script != "" {
		return nil
	}
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
	if c.Mesh.Bin == "" {
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
	return nil
}

func printCompare(w io.Writer, rows []figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tmeshcast\tpeer\tmeshcast/peer\ttarget\tmet")
	for _, f := range rows {
		met := ""
		if m, ok := f.met(); ok {
			met = "yes"
			if !m {
				met = "NO"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Unit, fmtRounds(f, f.Mesh), fmtRounds(f, f.Peer),
			fmtRatio(f.ratio()), f.Target, met)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "values: median of the rounds, each round in brackets")
}

func fmtRounds(f figure, v []float64) string {
	if len(v) == 0 {
		return "n/a"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmtNum(x)
	}
	return fmt.Sprintf("%s [%s]", fmtNum(f.median(v)), strings.Join(parts, " "))
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
