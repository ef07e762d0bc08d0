//go:build faults

package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The fault suite runs the real binary, built once per test run (without
// -race: the figures must be those of a production build).
var faultBin struct {
	once sync.Once
	path string
	err  error
}

func faultBinary(t *testing.T) string {
	t.Helper()
	faultBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "meshcast-faults-bin-")
		if err != nil {
			faultBin.err = err
			return
		}
		afterTests = append(afterTests, func() { os.RemoveAll(dir) })
		faultBin.path = filepath.Join(dir, "meshcast")
		if out, err := exec.Command("go", "build", "-o", faultBin.path, ".").CombinedOutput(); err != nil {
			faultBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if faultBin.err != nil {
		t.Fatal(faultBin.err)
	}
	return faultBin.path
}

// faultNode is one member of a fault scenario. Its name and addresses are
// fixed, so a restart comes back as the same member on the same ports; at
// most one process (incarnation) of it runs at a time.
type faultNode struct {
	index    int
	name     string
	httpAddr string   // host:port for clients and polls
	gossip   string   // host:port other nodes --join
	addrArgs []string // --listen, --gossip, --peer (, --advertise)
	prefix   []string // command prefix, e.g. ip netns exec <ns>
	bin      string

	mu   sync.Mutex
	incs []*incarnation // every process started, the last one current
}

// incarnation is one process of a node.
type incarnation struct {
	cmd     *exec.Cmd
	startAt time.Time
	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed

	mu    sync.Mutex
	lines []string // stderr (JSON log lines)
}

func (n *faultNode) String() string { return n.name }

// start runs a new incarnation, joining join when it is not empty.
func (n *faultNode) start(join string) (*incarnation, error) {
	args := append([]string{}, n.prefix...)
	// The history namespace of the suite's traffic, plus what a scenario
	// set in the environment (a flag would hide MESHCAST_NAMESPACE).
	namespaces := histNamespace
	if env := os.Getenv("MESHCAST_NAMESPACE"); env != "" {
		namespaces = env + ";" + histNamespace
	}
	args = append(args, n.bin, "--name", n.name, "--secret", testSecret, "--log-format", "json",
		"--namespace", namespaces)
	args = append(args, n.addrArgs...)
	if join != "" {
		args = append(args, "--join", join)
	}
	cmd := exec.Command(args[0], args[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	inc := &incarnation{cmd: cmd, exited: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", n.name, err)
	}
	inc.startAt = time.Now()
	n.incs = append(n.incs, inc)
	go inc.collect(bufio.NewScanner(stderr))
	return inc, nil
}

// collect keeps the log lines until the process ends, then reaps it.
func (inc *incarnation) collect(sc *bufio.Scanner) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		inc.mu.Lock()
		inc.lines = append(inc.lines, sc.Text())
		inc.mu.Unlock()
	}
	inc.waitErr = inc.cmd.Wait()
	close(inc.exited)
}

func (inc *incarnation) log() string {
	inc.mu.Lock()
	defer inc.mu.Unlock()
	return strings.Join(inc.lines, "\n")
}

func (inc *incarnation) running() bool {
	select {
	case <-inc.exited:
		return false
	default:
		return true
	}
}

func (n *faultNode) current() *incarnation {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.incs) == 0 {
		return nil
	}
	return n.incs[len(n.incs)-1]
}

// signal sends sig to the current process.
func (n *faultNode) signal(sig syscall.Signal) error {
	inc := n.current()
	if inc == nil || !inc.running() {
		return fmt.Errorf("%s is not running", n.name)
	}
	return inc.cmd.Process.Signal(sig)
}

// signalAndWait sends sig and waits up to timeout for the process to end.
func (n *faultNode) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	if err := n.signal(sig); err != nil {
		return err
	}
	select {
	case <-n.current().exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v of %v", n.name, timeout, sig)
	}
}

// stopAll kills every process of the node and reaps it (t.Cleanup).
func (n *faultNode) stopAll() {
	n.mu.Lock()
	incs := append([]*incarnation(nil), n.incs...)
	n.mu.Unlock()
	for _, inc := range incs {
		if inc.running() {
			_ = inc.cmd.Process.Signal(syscall.SIGCONT) // a frozen process
			_ = inc.cmd.Process.Kill()
		}
		<-inc.exited
	}
}

// errorLines returns the node's ERROR-level log lines, all processes.
func (n *faultNode) errorLines() []string {
	n.mu.Lock()
	incs := append([]*incarnation(nil), n.incs...)
	n.mu.Unlock()
	var out []string
	for _, inc := range incs {
		inc.mu.Lock()
		for _, l := range inc.lines {
			if strings.Contains(l, `"level":"ERROR"`) {
				out = append(out, l)
			}
		}
		inc.mu.Unlock()
	}
	return out
}

// saveLogs writes each incarnation's log to dir/<name>.<k>.log.
func (n *faultNode) saveLogs(dir string) error {
	n.mu.Lock()
	incs := append([]*incarnation(nil), n.incs...)
	n.mu.Unlock()
	for k, inc := range incs {
		p := filepath.Join(dir, fmt.Sprintf("%s.%d.log", n.name, k+1))
		if err := os.WriteFile(p, []byte(inc.log()+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// freeLoopbackPorts returns n distinct ports free on 127.0.0.1 for TCP
// and UDP (gossip uses both), all held open until every one is chosen.
// They are picked below the ephemeral range, so that no outgoing
// connection can take a port while its node is down for a restart.
func freeLoopbackPorts(n int) ([]int, error) {
	low := ephemeralLow()
	var ports []int
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("no free port pair below %d after 1000 tries", low)
		}
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, ln.Close)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, pc.Close)
		ports = append(ports, port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768 // Linux's default; other systems start higher
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo < 11000 {
		return 32768
	}
	return lo
}
