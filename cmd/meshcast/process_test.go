package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport/wstest"
)

// proc is a meshcast binary running in its own process.
type proc struct {
	cmd        *exec.Cmd
	httpAddr   string
	gossipPort int
	exited     chan error

	mu    sync.Mutex
	lines []string // stderr, for failure messages
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// startProc runs the binary with every port chosen by the OS and reads the
// ports back from its "meshcast serving" log line.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--log-format", "json", "--secret", testSecret}, args...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "meshcast serving" {
				serving <- line
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case line := <-serving:
		p.httpAddr = line["http"].(string)[len("http://"):]
		p.gossipPort = int(line["gossip_port"].(float64))
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("node exited before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not start in 30 s")
	}
	return p
}

// TestThreeProcesses builds the binary, starts three nodes, and checks a
// publish on one reaches a subscriber on each of the others, then that
// SIGTERM drains each node cleanly.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "meshcast")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	first := startProc(t, bin, "--name", "p0")
	join := "127.0.0.1:" + strconv.Itoa(first.gossipPort)
	procs := []*proc{first, startProc(t, bin, "--name", "p1", "--join", join), startProc(t, bin, "--name", "p2", "--join", join)}

	awaitMeshReady(t, procs)
	var subs []*wstest.Client
	for _, p := range procs[1:] {
		c := wstest.Dial(t, "ws://"+p.httpAddr+"/ws")
		c.MustAck(`{"op":"sub","ch":"across","id":1}`)
		subs = append(subs, c)
	}
	pub := wstest.Dial(t, "ws://"+first.httpAddr+"/ws")
	pub.MustAck(`{"op":"pub","ch":"across","data":{"from":"p0"},"id":1}`)
	for i, c := range subs {
		m := c.ReadJSON()
		if m["op"] != "msg" || fmt.Sprint(m["data"]) != "map[from:p0]" {
			t.Fatalf("subscriber on p%d got %v", i+1, m)
		}
	}
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range append(subs, pub) {
		if code, _ := c.ExpectClose(); code != 1001 {
			t.Fatalf("client %d closed with %d, want 1001", i, code)
		}
	}
	// The drain says how many clients it closed, and how long it took.
	wstest.WaitFor(t, 15*time.Second, "p1's drain logged", func() bool {
		var draining, stopped bool
		for _, l := range strings.Split(procs[1].log(), "\n") {
			draining = draining || strings.Contains(l, `"msg":"signal received, draining"`) && strings.Contains(l, `"clients":1`)
			stopped = stopped || strings.Contains(l, `"msg":"stopped"`) && strings.Contains(l, `"drained_in":`)
		}
		return draining && stopped
	})
	for i, p := range procs {
		select {
		case err := <-p.exited:
			p.exited <- err
			if err != nil {
				t.Fatalf("p%d exited with %v after SIGTERM; its log:\n%s", i, err, p.log())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("p%d did not exit within 15 s of SIGTERM", i)
		}
	}
}

// awaitMeshReady waits until every process has a link up to every other
// and answers /readyz with 200.
func awaitMeshReady(t *testing.T, procs []*proc) {
	t.Helper()
	for _, p := range procs {
		wstest.WaitFor(t, 30*time.Second, "node ready with a link to every other", func() bool {
			var st struct {
				Links []struct {
					State string `json:"state"`
				} `json:"links"`
			}
			status, body := get(t, "http://"+p.httpAddr+"/api/cluster")
			if status != 200 || json.Unmarshal([]byte(body), &st) != nil {
				return false
			}
			up := 0
			for _, l := range st.Links {
				if l.State == "up" {
					up++
				}
			}
			ready, _ := get(t, "http://"+p.httpAddr+"/readyz")
			return up == len(procs)-1 && ready == 200
		})
	}
}
