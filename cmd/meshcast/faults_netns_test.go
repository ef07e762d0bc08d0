//go:build faults

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// netnsLab puts each node in its own network namespace. Cluster traffic
// (gossip, peer links) goes over a veth pair per node into one bridge in
// the root namespace; client traffic (HTTP, WebSocket) goes over a second,
// point-to-point veth pair per node, so clients stay connected to a node
// whose cluster link is cut. A partition sets the node's port on the
// bridge down: packets are dropped silently, as on a real network.
//
// Addresses, with x unique per test: node i is 10.x.0.(i+1) on the bridge
// and 10.x.(i+1).2 on its client link (10.x.(i+1).1 in the root namespace).
type netnsLab struct {
	tag    string // unique per test: names of namespaces and links
	octet  int    // x
	bridge string
	nodes  int
	undo   []func() // in reverse order at cleanup
}

var netnsSeq atomic.Int32

// newNetnsLab builds the namespaces for n nodes, or skips the test when
// this machine cannot (not root, not Linux, no iproute2, no netns).
func newNetnsLab(t *testing.T, n int) *netnsLab {
	t.Helper()
	switch {
	case runtime.GOOS != "linux":
		t.Skip("network partitions need Linux network namespaces; skipped on " + runtime.GOOS)
	case os.Geteuid() != 0:
		t.Skip("network partitions need root (ip netns add); run the fault suite as root to include them")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network partitions need the ip command (iproute2): " + err.Error())
	}
	seq := int(netnsSeq.Add(1))
	pid := os.Getpid()
	lab := &netnsLab{
		tag:   fmt.Sprintf("mf%d%d", pid%100000, seq%10),
		octet: 100 + (pid*7+seq)%150,
		nodes: n,
	}
	lab.bridge = lab.tag + "br"
	t.Cleanup(lab.cleanup)
	if out, err := ipCmd("netns", "add", lab.ns(0)); err != nil {
		t.Skipf("network partitions need network namespaces; ip netns add failed: %v: %s", err, out)
	}
	lab.undo = append(lab.undo, func() { _, _ = ipCmd("netns", "del", lab.ns(0)) })
	if err := lab.build(); err != nil {
		t.Fatalf("network namespaces: %v", err)
	}
	return lab
}

func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// run runs ip commands in order, stopping at the first that fails.
func (lab *netnsLab) run(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := ipCmd(c...); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func (lab *netnsLab) ns(i int) string         { return fmt.Sprintf("%sn%d", lab.tag, i) }
func (lab *netnsLab) bridgePort(i int) string { return fmt.Sprintf("%sb%d", lab.tag, i) }
func (lab *netnsLab) hostPort(i int) string   { return fmt.Sprintf("%sh%d", lab.tag, i) }

// clusterIP is node i's address on the bridge (gossip and peer links).
func (lab *netnsLab) clusterIP(i int) string { return fmt.Sprintf("10.%d.0.%d", lab.octet, i+1) }

// clientIP is node i's address on its client link.
func (lab *netnsLab) clientIP(i int) string { return fmt.Sprintf("10.%d.%d.2", lab.octet, i+1) }

func (lab *netnsLab) build() error {
	if err := lab.run([]string{"link", "add", lab.bridge, "type", "bridge"}); err != nil {
		return err
	}
	lab.undo = append(lab.undo, func() { _, _ = ipCmd("link", "del", lab.bridge) })
	if err := lab.run([]string{"link", "set", lab.bridge, "up"}); err != nil {
		return err
	}
	for i := range lab.nodes {
		if err := lab.buildNode(i); err != nil {
			return err
		}
	}
	return nil
}

// buildNode makes node i's namespace and both of its links. Deleting the
// namespace deletes both veth pairs.
func (lab *netnsLab) buildNode(i int) error {
	ns := lab.ns(i)
	if i > 0 {
		if err := lab.run([]string{"netns", "add", ns}); err != nil {
			return err
		}
		lab.undo = append(lab.undo, func() { _, _ = ipCmd("netns", "del", ns) })
	}
	// Deleting either end of a veth pair deletes both: these undo a build
	// that failed before moving the inner ends into the namespace.
	lab.undo = append(lab.undo,
		func() { _, _ = ipCmd("link", "del", lab.bridgePort(i)) },
		func() { _, _ = ipCmd("link", "del", lab.hostPort(i)) })
	inner := lab.tag + fmt.Sprintf("c%d", i)  // cluster side, in ns
	client := lab.tag + fmt.Sprintf("k%d", i) // client side, in ns
	x := lab.octet
	return lab.run(
		[]string{"-n", ns, "link", "set", "lo", "up"},
		[]string{"link", "add", lab.bridgePort(i), "type", "veth", "peer", "name", inner},
		[]string{"link", "set", inner, "netns", ns},
		[]string{"link", "set", lab.bridgePort(i), "master", lab.bridge, "up"},
		[]string{"-n", ns, "addr", "add", lab.clusterIP(i) + "/24", "dev", inner},
		[]string{"-n", ns, "link", "set", inner, "up"},
		[]string{"link", "add", lab.hostPort(i), "type", "veth", "peer", "name", client},
		[]string{"link", "set", client, "netns", ns},
		[]string{"addr", "add", fmt.Sprintf("10.%d.%d.1/24", x, i+1), "dev", lab.hostPort(i)},
		[]string{"link", "set", lab.hostPort(i), "up"},
		[]string{"-n", ns, "addr", "add", lab.clientIP(i) + "/24", "dev", client},
		[]string{"-n", ns, "link", "set", client, "up"},
	)
}

// partition cuts node i off the cluster network; heal restores it.
func (lab *netnsLab) partition(i int) error {
	return lab.run([]string{"link", "set", lab.bridgePort(i), "down"})
}

func (lab *netnsLab) heal(i int) error {
	return lab.run([]string{"link", "set", lab.bridgePort(i), "up"})
}

// nodeArgs are node i's address flags and command prefix.
func (lab *netnsLab) nodeArgs(i int) (httpAddr, gossip string, addrArgs, prefix []string) {
	ip := lab.clusterIP(i)
	addrArgs = []string{"--listen", "0.0.0.0:8080", "--gossip", ip + ":7946", "--peer", ip + ":7947", "--advertise", ip}
	return lab.clientIP(i) + ":8080", ip + ":7946", addrArgs, []string{"ip", "netns", "exec", lab.ns(i)}
}

// cleanup removes everything built, newest first. Processes must be dead
// already (scenario cleanup kills them before this runs).
func (lab *netnsLab) cleanup() {
	for i := len(lab.undo) - 1; i >= 0; i-- {
		lab.undo[i]()
	}
	lab.undo = nil
}
