package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport/wstest"
)

// startHistoryProcs builds the binary and starts three node processes with
// history on the "hist" namespace, linked and ready.
func startHistoryProcs(t *testing.T) []*proc {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "meshcast")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"--namespace", "hist:history=1000"}
	first := startProc(t, bin, append(args, "--name", "h0")...)
	join := "127.0.0.1:" + strconv.Itoa(first.gossipPort)
	procs := []*proc{first,
		startProc(t, bin, append(args, "--name", "h1", "--join", join)...),
		startProc(t, bin, append(args, "--name", "h2", "--join", join)...)}
	awaitMeshReady(t, procs)
	return procs
}

func (p *proc) wsURL() string { return "ws://" + p.httpAddr + "/ws" }

// kill9 kills p with SIGKILL and waits for it to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	err := <-p.exited
	p.exited <- err // for the cleanup
}

// TestHistorySurvivesKill9OfAcceptingNode: every publish acked by a node
// killed with -9 right after is still in the history read from another
// node, whether the channel had a subscriber elsewhere or none.
func TestHistorySurvivesKill9OfAcceptingNode(t *testing.T) {
	procs := startHistoryProcs(t)
	sub := wstest.Dial(t, procs[2].wsURL())
	sub.MustAck(`{"op":"sub","ch":"hist:kill","id":1}`)
	pub := wstest.Dial(t, procs[0].wsURL())
	for _, ch := range []string{"hist:kill", "hist:lonely"} {
		for i := 1; i <= 30; i++ {
			pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":%d,"id":%d}`, ch, i, i))
		}
	}
	procs[0].kill9(t)
	for _, ch := range []string{"hist:kill", "hist:lonely"} {
		reader := dialReady(t, procs[1])
		reader.SendText(fmt.Sprintf(`{"op":"history","ch":%q,"id":2}`, ch))
		m := readHist(t, reader)
		var got []string
		for _, e := range m.Msgs {
			got = append(got, string(e.Data))
		}
		if strings.Join(got, ",") != strings.Join(seq(1, 30), ",") {
			t.Fatalf("%s after kill -9 of the accepting node: history %v (%+v)", ch, got, m)
		}
	}
}

// TestHistorySurvivesKill9OfSubscribersNode: a subscriber whose node is
// killed with -9 resumes on another node from the last position it saw
// and gets exactly what it missed, recovered:true.
func TestHistorySurvivesKill9OfSubscribersNode(t *testing.T) {
	procs := startHistoryProcs(t)
	const ch = "hist:kill"
	sub := wstest.Dial(t, procs[2].wsURL())
	sub.MustAck(`{"op":"sub","ch":"hist:kill","id":1}`)
	pub := wstest.Dial(t, procs[0].wsURL())
	for i := 1; i <= 60; i++ {
		pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":%d,"id":%d}`, ch, i, i))
	}
	var pos20 string
	for i := 1; i <= 20; i++ {
		m := readHist(t, sub)
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("live %d: %+v", i, m)
		}
		pos20 = m.Pos
	}
	procs[2].kill9(t)
	back := dialReady(t, procs[1])
	got, recovered := resumeFrom(t, back, ch, pos20)
	if strings.Join(got, ",") != strings.Join(seq(21, 60), ",") || !recovered {
		t.Fatalf("resumed on h1 after kill -9 of h2: %v recovered %v", got, recovered)
	}
	pub.MustAck(fmt.Sprintf(`{"op":"pub","ch":%q,"data":61,"id":61}`, ch))
	if m := readHist(t, back); string(m.Data) != "61" {
		t.Fatalf("live after the recovery: %+v", m)
	}
}

// dialReady connects to p once it serves clients (a node that just lost a
// peer may refuse with 503 while it re-verifies).
func dialReady(t *testing.T, p *proc) *wstest.Client {
	t.Helper()
	wstest.WaitFor(t, 30*time.Second, "node ready", func() bool {
		status, _ := get(t, "http://"+p.httpAddr+"/readyz")
		return status == 200
	})
	return wstest.Dial(t, p.wsURL())
}
