package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fig builds a figure from meshcast's and the Socket.IO peer's rounds.
func fig(mesh, peer []float64) figure {
	f := figure{Vals: map[string][]float64{}}
	if mesh != nil {
		f.Vals[sysMeshcast] = mesh
	}
	if peer != nil {
		f.Vals[sysSocketIO] = peer
	}
	return f
}

func TestFigureTargets(t *testing.T) {
	with := func(f figure, set func(*figure)) figure { set(&f); return f }
	cases := []struct {
		f    figure
		met  bool
		ok   bool
		want float64
	}{
		{with(fig([]float64{150, 170}, []float64{16, 16}), func(f *figure) { f.Want, f.Higher = 9, true }), true, true, 10},
		{with(fig([]float64{100, 120, 140}, []float64{16, 99, 16}), func(f *figure) { f.Want, f.Higher = 9, true }), false, true, 7.5},
		{with(fig([]float64{2}, []float64{20}), func(f *figure) { f.Want = 0.2 }), true, true, 0.1},
		{with(fig([]float64{5}, []float64{20}), func(f *figure) { f.Want = 0.2 }), false, true, 0.25},
		{with(fig([]float64{4000}, []float64{2000}), func(f *figure) { f.AbsMin = 5000 }), false, true, 2},
		{fig([]float64{3}, []float64{3}), false, false, 1},
		{with(fig([]float64{3}, nil), func(f *figure) { f.Want = 0.2 }), false, true, math.NaN()},
	}
	for i, c := range cases {
		met, ok := c.f.met()
		r := c.f.ratio(sysSocketIO)
		if met != c.met || ok != c.ok || !(r == c.want || math.IsNaN(r) && math.IsNaN(c.want)) {
			t.Errorf("case %d: met %v ok %v ratio %v", i, met, ok, r)
		}
	}
	// The target is against Socket.IO only: Centrifugo's figures leave it alone.
	f := fig([]float64{150}, []float64{10})
	f.Want, f.Higher = 9, true
	f.add(sysCentrifugo, 100)
	if met, ok := f.met(); !met || !ok || f.ratio(sysCentrifugo) != 1.5 {
		t.Errorf("met %v ok %v ratio to centrifugo %v", met, ok, f.ratio(sysCentrifugo))
	}
}

func TestPrintCompare(t *testing.T) {
	var b bytes.Buffer
	fan := fig([]float64{150, 170}, []float64{16, 16})
	fan.Name, fan.Unit, fan.Target, fan.Want, fan.Higher = "fanout", "pub/s", ">= 9x", 9, true
	fan.add(sysCentrifugo, 40)
	fan.add(sysCentrifugo, 60)
	idle := fig([]float64{4.5}, []float64{18})
	idle.Name, idle.Unit, idle.Target, idle.Want = "idle", "KiB", "<= 1/5", 0.2
	printCompare(&b, allSystems, []figure{fan, idle, {Name: "empty", Unit: "ms"}})
	out := b.String()
	for _, want := range []string{"meshcast/socketio", "meshcast/centrifugo", "160 [150 170]", "50.0 [40.0 60.0]",
		"10.00x", "3.20x", "yes", "0.250 (1/4.0)", "NO", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Without meshcast there is nothing to divide by: no ratio columns.
	b.Reset()
	printCompare(&b, []string{sysSocketIO, sysCentrifugo}, []figure{fan})
	if strings.Contains(b.String(), "meshcast/") {
		t.Errorf("ratio columns without meshcast:\n%s", b.String())
	}
}

func TestParseSystems(t *testing.T) {
	got, err := parseSystems("centrifugo, meshcast")
	if err != nil || !slices.Equal(got, []string{sysCentrifugo, sysMeshcast}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "meshcast,peer", "meshcast,meshcast"} {
		if _, err := parseSystems(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "meshcast-bench", "peer", "peer.sh")); err != nil {
		t.Fatalf("root %s: %v", root, err)
	}
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Fatal("found a module root in an empty temp dir")
	}
}

func TestCompareUnknownScenario(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"compare", "--meshcast-bin", "/bin/true", "--peer-script", "/bin/true",
		"--scenarios", "bogus", "--quiet"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), `unknown compare scenario "bogus"`) {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestPeerSocketIO runs the real peer (Node Socket.IO + Redis adapter)
// when it is installed; CI has no node_modules and skips, since tests must
// not download anything.
func TestPeerSocketIO(t *testing.T) {
	for _, bin := range []string{"node", "redis-server", "redis-cli", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	wd, _ := os.Getwd()
	if _, err := os.Stat(filepath.Join(wd, "peer", "node_modules", "socket.io")); err != nil {
		t.Skip("peer not installed (run peer/peer.sh install)")
	}
	ctx := context.Background()
	cl, err := startPeer(ctx, peerOpts{Script: filepath.Join(wd, "peer", "peer.sh"), RedisPort: 16391, BasePort: 13101}, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	cc := testConn(cl.URLs...)
	cc.Proto = "socketio"
	cfg := fanoutConfig{connConfig: cc, Pubs: 2, Rate: 40, Size: 100, Duration: 1e9, Drain: 3e9,
		Channel: "room", Rooms: 4, RoomSize: 5, Subs: 20, CrossEvery: 2, RedisAddr: cl.RedisAddr}
	rep, err := runFanout(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Steps[0]
	// Every join was acked (43<id>[]) and every message reached its room's
	// five subscribers across the two nodes, through Redis.
	if rep.Acked != 20 || s.Published != 40 || s.Received != 200 || s.Lost != 0 || s.Dups != 0 {
		t.Fatalf("acked %d step %+v", rep.Acked, s)
	}
	if s.CrossBytes <= 0 || s.CrossPerDel <= 0 {
		t.Fatalf("no bytes through redis: %+v", s)
	}
	pids := cl.PIDs
	cl.Stop()
	for _, pid := range pids {
		if _, err := readProcStatus(pid); err == nil {
			t.Errorf("peer node %d still running after Stop", pid)
		}
	}
}
