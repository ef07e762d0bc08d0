package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// loadedP99 is the p99 bound of the end-to-end tests, which check what
// was delivered, not how fast: with the race detector and other
// packages' tests beside them on a small machine a delivery can stall
// for over a second (p99 1.5 s, p50 3 ms, nothing lost, seen under
// .ci/run), which the tool's 250 ms default calls a failed step.
// fillstep_test.go tests the bound itself.
const loadedP99 = 10 * time.Second

func testConn(urls ...string) connConfig {
	return connConfig{URLs: urls, Proto: "v1", Workers: 2, DialConc: 8,
		DialTimeout: 5 * time.Second, AckTimeout: 5 * time.Second, Timeout: 25 * time.Second, Quiet: true}
}

// readers are the subscriber receive paths every end-to-end fan-out test
// runs with.
var readers = []string{"goroutine", readerEpoll, readerUring}

func TestFanoutEndToEnd(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd, func(t *testing.T) { testFanoutEndToEnd(t, rd) })
	}
}

func testFanoutEndToEnd(t *testing.T, reader string) {
	f := newFakeServer(t, nil)
	cc := testConn(f.URL, f.URL)
	cc.Reader = reader
	cfg := fanoutConfig{connConfig: cc, Subs: 20, Pubs: 3, Rate: 150, Size: 100,
		Duration: time.Second, Drain: 3 * time.Second, P99Bound: loadedP99}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 20 || rep.Connected != 23 || len(rep.Steps) != 1 {
		t.Fatalf("connected %d acked %d steps %d", rep.Connected, rep.Acked, len(rep.Steps))
	}
	s := rep.Steps[0]
	if s.Published != 150 || s.Expected != 150*20 {
		t.Fatalf("published %d expected %d", s.Published, s.Expected)
	}
	if s.Received != s.Expected || s.Lost != 0 || s.Dups != 0 || s.Reordered != 0 || s.Foreign != 0 {
		t.Fatalf("step %+v", s)
	}
	if s.P50 <= 0 || s.P99 < s.P50 || s.Max < s.P99 || !s.OK {
		t.Fatalf("latency %+v", s)
	}
	waitFor(t, 5*time.Second, func() bool { return f.count() == 0 })
}

// oneStep runs one second of fan-out (2 publishers, 100 publishes of 100
// bytes) to subs subscribers and returns the report and its step.
func oneStep(t *testing.T, cc connConfig, subs int) (*fanoutReport, stepResult) {
	t.Helper()
	cfg := fanoutConfig{connConfig: cc, Subs: subs, Pubs: 2, Rate: 100, Size: 100,
		Duration: time.Second, Drain: 3 * time.Second, P99Bound: loadedP99}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return rep, rep.Steps[0]
}

// TestFanoutArrivalKernel: with --arrival kernel every delivery is timed
// at the kernel's receive timestamp, no later than the read, and the read
// latency is reported beside it.
func TestFanoutArrivalKernel(t *testing.T) {
	for _, rd := range []string{readerEpoll, readerUring} {
		t.Run(rd, func(t *testing.T) {
			f := newFakeServer(t, nil)
			cc := testConn(f.URL)
			cc.Reader, cc.Arrival = rd, arrivalKernel
			// Not --reader-idle: on a machine whose cores are busy with
			// other work, an idle-priority reader barely runs and the step
			// ends before it has read (TestReaderIdleThread checks the
			// policy itself).
			_, s := oneStep(t, cc, 20)
			if s.Received != s.Expected || s.Lost != 0 || !s.OK {
				t.Fatalf("step %+v", s)
			}
			// Stamping is switched on for the whole stack a moment after
			// the first socket asks, so the first few may come unstamped;
			// not all of them.
			if s.Unstamped >= s.Received {
				t.Fatalf("%d of %d deliveries without a kernel timestamp", s.Unstamped, s.Received)
			}
			if s.P50 <= 0 || s.ReadP50 < s.P50 || s.ReadP99 < s.P99 || s.ReadMax < s.Max {
				t.Fatalf("arrival p50/p99/max %.3f/%.3f/%.3f ms, read %.3f/%.3f/%.3f ms: an arrival after its read",
					s.P50, s.P99, s.Max, s.ReadP50, s.ReadP99, s.ReadMax)
			}
		})
	}
}

// TestFanoutLatencyByNode: with several URLs, deliveries are split by
// whether the subscriber is on the node its publisher published to. The
// fake server makes every delivery to the second URL's subscribers look
// a second older, so a split that mixed the groups up would show it.
func TestFanoutLatencyByNode(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.agedQuery = "n=1" })
	cc := testConn(f.URL+"?n=0", f.URL+"?n=1")
	cfg := fanoutConfig{connConfig: cc, Subs: 10, Pubs: 1, Rate: 100, Size: 100,
		Duration: time.Second, Drain: 3 * time.Second, P99Bound: loadedP99}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Steps[0]
	if s.Received != s.Expected || s.Lost != 0 || s.Local == nil || s.Remote == nil {
		t.Fatalf("step %+v", s)
	}
	if got := s.Local.Deliveries + s.Remote.Deliveries; got != uint64(s.Received) || s.Local.Deliveries != s.Remote.Deliveries {
		t.Fatalf("publisher's node %d deliveries, other nodes %d, received %d: want half each", s.Local.Deliveries, s.Remote.Deliveries, s.Received)
	}
	if s.Local.Max >= 1000 || s.Remote.P50 < 1000 {
		t.Fatalf("publisher's node max %.1f ms, other nodes p50 %.1f ms: the aged deliveries are in the wrong group", s.Local.Max, s.Remote.P50)
	}
	var out strings.Builder
	printFanout(&out, rep)
	if !strings.Contains(out.String(), "subscribers on the publisher's node: ") {
		t.Fatalf("report has no per-node line:\n%s", out.String())
	}
}

func TestFanoutDetectsLossAndDuplicates(t *testing.T) {
	cases := []struct {
		name      string
		configure func(*fakeServer)
		check     func(s stepResult) bool
	}{
		{"drop", func(f *fakeServer) { f.dropEvery = 10 }, func(s stepResult) bool {
			return s.Lost == 10 && s.Received == s.Expected-10 && s.Dups == 0 && !s.OK
		}},
		{"dup", func(f *fakeServer) { f.dupEvery = 25 }, func(s stepResult) bool {
			return s.Dups == 4 && s.Lost == 0 && s.Received == s.Expected && !s.OK
		}},
	}
	for _, tc := range cases {
		for _, rd := range readers {
			t.Run(tc.name+"/"+rd, func(t *testing.T) {
				f := newFakeServer(t, tc.configure)
				cc := testConn(f.URL)
				cc.Reader = rd
				cfg := fanoutConfig{connConfig: cc, Subs: 5, Pubs: 2, Rate: 100, Size: 64,
					Duration: time.Second, Drain: 10 * time.Second} // ends at once when all arrived, or after a 1 s stall (drop)
				rep, err := runFanout(context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				if s := rep.Steps[0]; !tc.check(s) {
					t.Fatalf("unexpected step %+v", s)
				}
			})
		}
	}
}

func TestFanoutRampCLI(t *testing.T) {
	f := newFakeServer(t, nil)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"fanout", "--urls", f.URL, "--subs", "10", "--pubs", "2",
		"--rate", "50", "--ramp", "--ramp-factor", "2", "--max-steps", "2", "--duration", "500ms",
		"--drain", "1s", "--workers", "2", "--p99-bound", loadedP99.String(), "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep fanoutReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Steps) != 2 || rep.Steps[1].TargetRate != 100 || rep.BestRate != 100 || rep.Stopped != "max steps" {
		t.Fatalf("report %+v", rep)
	}
	if strings.Count(errb.String(), "\n") == 0 {
		t.Fatalf("no progress lines on stderr")
	}
}

func TestIdleEndToEnd(t *testing.T) {
	f := newFakeServer(t, nil)
	cfg := idleConfig{connConfig: testConn(f.URL), Conns: 30, PIDs: []int{os.Getpid()},
		StatsURLs: []string{f.StatsURL}, Hold: 2 * time.Second}
	rep, err := runIdle(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 30 || rep.Connected != 30 || rep.SubErrs != 0 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Procs) != 1 || rep.Procs[0].RSSBeforeKiB <= 0 || rep.Procs[0].ThreadsAfter <= 0 || rep.SettleSamples < 1 {
		t.Fatalf("procs %+v", rep.Procs)
	}
	// The fake server runs a goroutine per connection in this process.
	g := rep.Goroutines[0]
	if g.Before < 0 || g.After < g.Before+30 {
		t.Fatalf("goroutines %+v", g)
	}
	var out bytes.Buffer
	printIdle(&out, rep)
	if !strings.Contains(out.String(), "KiB per connection") {
		t.Fatalf("table: %s", out.String())
	}
	waitFor(t, 5*time.Second, func() bool { return f.count() == 0 })
}

func TestFanoutNoServer(t *testing.T) {
	cfg := fanoutConfig{connConfig: testConn("ws://127.0.0.1:1/ws"), Subs: 3, Pubs: 1, Rate: 10,
		Duration: time.Second}
	_, err := runFanout(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no subscriber") {
		t.Fatalf("err %v", err)
	}
}

func TestFanoutSocketIO(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd, func(t *testing.T) { testFanoutSocketIO(t, rd) })
	}
}

func testFanoutSocketIO(t *testing.T, reader string) {
	f := newFakeServer(t, nil)
	base := strings.TrimSuffix(f.URL, "/ws")
	cc := testConn(base)
	cc.Proto = "socketio"
	cc.Reader = reader
	rep, s := oneStep(t, cc, 10)
	if rep.Acked != 10 || s.Published != 100 || s.Received != s.Expected || s.Lost != 0 || !s.OK {
		t.Fatalf("acked %d step %+v", rep.Acked, s)
	}
	// Every connection answered the server's ping.
	waitFor(t, 5*time.Second, func() bool { return f.pongCount() == 12 })
}

func TestRoomsCLI(t *testing.T) {
	f := newFakeServer(t, nil)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"rooms", "--urls", f.URL + "," + f.URL, "--rooms", "6", "--room-size", "4",
		"--cross", "0.5", "--pubs", "3", "--rate", "120", "--duration", "1s", "--drain", "2s", "--workers", "2",
		"--cluster-urls", strings.Replace(f.StatsURL, "stats", "cluster", 1), "--json", "--quiet"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep fanoutReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	s := rep.Steps[0]
	if rep.Scenario != "rooms" || rep.Acked != 24 || rep.CrossEvery != 2 || s.Published != 120 {
		t.Fatalf("report %+v", rep)
	}
	// Each publish reaches the 4 subscribers of its room only.
	if s.Expected != 480 || s.Received != 480 || s.Lost != 0 || s.Dups != 0 {
		t.Fatalf("step %+v", s)
	}
	if s.CrossBytes != 10*120 || s.CrossPerPub != 10 {
		t.Fatalf("cross bytes %d (%.1f per publish)", s.CrossBytes, s.CrossPerPub)
	}
}

func TestCheckArrival(t *testing.T) {
	for _, ok := range [][2]string{{"", "goroutine"}, {"read", "goroutine"}, {arrivalKernel, readerEpoll}, {arrivalKernel, readerUring}} {
		if err := checkReadOptions(connConfig{Arrival: ok[0], Reader: ok[1]}); err != nil {
			t.Errorf("--arrival %q --reader %q: %v", ok[0], ok[1], err)
		}
	}
	for _, bad := range [][2]string{{arrivalKernel, "goroutine"}, {arrivalKernel, ""}, {"nic", readerEpoll}} {
		if err := checkReadOptions(connConfig{Arrival: bad[0], Reader: bad[1]}); err == nil {
			t.Errorf("--arrival %q --reader %q accepted", bad[0], bad[1])
		}
	}
	if checkReadOptions(connConfig{ReaderIdle: true, Reader: "goroutine"}) == nil ||
		checkReadOptions(connConfig{ReaderIdle: true, Reader: readerUring}) != nil ||
		checkReadOptions(connConfig{Reader: "goroutine"}) != nil {
		t.Error("--reader-idle: wants epoll or uring, and only then")
	}
}
