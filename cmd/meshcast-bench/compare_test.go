package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFigureTargets(t *testing.T) {
	cases := []struct {
		f    figure
		met  bool
		ok   bool
		want float64
	}{
		{figure{Mesh: []float64{150, 170}, Peer: []float64{16, 16}, Want: 9, Higher: true}, true, true, 10},
		{figure{Mesh: []float64{100, 120, 140}, Peer: []float64{16, 99, 16}, Want: 9, Higher: true}, false, true, 7.5},
		{figure{Mesh: []float64{2}, Peer: []float64{20}, Want: 0.2}, true, true, 0.1},
		{figure{Mesh: []float64{5}, Peer: []float64{20}, Want: 0.2}, false, true, 0.25},
		{figure{Mesh: []float64{4000}, Peer: []float64{2000}, AbsMin: 5000}, false, true, 2},
		{figure{Mesh: []float64{3}, Peer: []float64{3}}, false, false, 1},
		{figure{Mesh: []float64{3}, Want: 0.2}, false, true, math.NaN()},
	}
	for i, c := range cases {
		met, ok := c.f.met()
		r := c.f.ratio()
		if met != c.met || ok != c.ok || !(r == c.want || math.IsNaN(r) && math.IsNaN(c.want)) {
			t.Errorf("case %d: met %v ok %v ratio %v", i, met, ok, r)
		}
	}
}

func TestPrintCompare(t *testing.T) {
	var b bytes.Buffer
	printCompare(&b, []figure{
		{Name: "fanout", Unit: "pub/s", Mesh: []float64{150, 170}, Peer: []float64{16, 16}, Target: ">= 9x", Want: 9, Higher: true},
		{Name: "idle", Unit: "KiB", Mesh: []float64{4.5}, Peer: []float64{18}, Target: "<= 1/5", Want: 0.2},
		{Name: "empty", Unit: "ms"},
	})
	out := b.String()
	for _, want := range []string{"160 [150 170]", "10.00x", "yes", "0.250 (1/4.0)", "NO", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
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
