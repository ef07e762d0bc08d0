package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cluster is a running system under test: its client URLs, the PIDs whose
// RSS counts, and where the bytes crossing between nodes are read.
type cluster struct {
	Name        string
	Proto       string
	URLs        []string // client URLs, node order
	PIDs        []int    // server PIDs, node order
	ClusterURLs []string // meshcast /api/cluster
	StatsURLs   []string // meshcast /api/stats
	RedisAddr   string   // peer: Redis host:port
	stop        func()
}

func (c *cluster) Stop() {
	if c != nil && c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// meshcastOpts locates the meshcast binary and the ports of its nodes.
type meshcastOpts struct {
	Bin      string // meshcast binary
	BasePort int    // node i: HTTP BasePort+i, gossip BasePort+100+2i, peer links BasePort+101+2i
	Secret   string
	Extra    []string // more flags for every node
}

// startMeshcast starts n meshcast nodes on loopback and waits until every
// node sees n members alive and is ready (/readyz) to take clients.
func startMeshcast(ctx context.Context, o meshcastOpts, n int, stderr io.Writer) (*cluster, error) {
	cl := &cluster{Name: "meshcast", Proto: "v1"}
	if o.Secret == "" { // the nodes refuse a weak secret
		o.Secret = rand.Text()
	}
	var procs []*exec.Cmd
	cl.stop = func() { stopProcs(procs, syscall.SIGTERM, 10*time.Second) }
	for i := range n {
		http := fmt.Sprintf("127.0.0.1:%d", o.BasePort+i)
		args := []string{"--listen", http, "--name", fmt.Sprintf("bench-%d", i),
			"--gossip", fmt.Sprintf("127.0.0.1:%d", o.BasePort+100+2*i),
			"--peer", fmt.Sprintf("127.0.0.1:%d", o.BasePort+101+2*i), "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", o.BasePort+100))
		}
		cmd := exec.Command(o.Bin, append(args, o.Extra...)...)
		cmd.Env = append(os.Environ(), "MESHCAST_SECRET="+o.Secret)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		setDeathSignal(cmd, syscall.SIGKILL)
		if err := cmd.Start(); err != nil {
			cl.Stop()
			return nil, fmt.Errorf("start meshcast node %d: %w", i, err)
		}
		procs = append(procs, cmd)
		cl.PIDs = append(cl.PIDs, cmd.Process.Pid)
		cl.URLs = append(cl.URLs, "ws://"+http+"/ws")
		cl.ClusterURLs = append(cl.ClusterURLs, "http://"+http+"/api/cluster")
		cl.StatsURLs = append(cl.StatsURLs, "http://"+http+"/api/stats")
	}
	err := pollUntil(ctx, 20*time.Second, func() bool {
		for _, u := range cl.ClusterURLs {
			var v struct {
				Members []struct {
					State string `json:"state"`
				} `json:"members"`
			}
			if getJSON(ctx, u, &v) != nil {
				return false
			}
			alive := 0
			for _, m := range v.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive < n || getJSON(ctx, strings.Replace(u, "/api/cluster", "/readyz", 1), &struct{}{}) != nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		cl.Stop()
		return nil, fmt.Errorf("meshcast cluster of %d on port %d did not come up: %w", n, o.BasePort, err)
	}
	return cl, nil
}

// peerOpts locates a peer's script (peer.sh for Socket.IO, centrifugo.sh)
// and the ports of its cluster.
type peerOpts struct {
	Script    string
	RedisPort int
	BasePort  int // node i listens on BasePort+i
}

func (o peerOpts) ports(n int) string {
	var ports []string
	for i := range n {
		ports = append(ports, strconv.Itoa(o.BasePort+i))
	}
	return strings.Join(ports, " ")
}

// startPeer runs "peer.sh up" for n Socket.IO nodes joined by the Redis
// adapter.
func startPeer(ctx context.Context, o peerOpts, n int, stderr io.Writer) (*cluster, error) {
	env := []string{"PEER_REDIS_PORT=" + strconv.Itoa(o.RedisPort), "PEER_PORTS=" + o.ports(n)}
	return startScript(ctx, o.Script, env, n, &cluster{Name: "socket.io+redis", Proto: "socketio"}, stderr)
}

// startCentrifugo runs "centrifugo.sh up" for n Centrifugo nodes: the
// memory engine for one, the Redis engine (and a Redis) for more.
func startCentrifugo(ctx context.Context, o peerOpts, n int, stderr io.Writer) (*cluster, error) {
	env := []string{"CF_REDIS_PORT=" + strconv.Itoa(o.RedisPort), "CF_PORTS=" + o.ports(n)}
	name := "centrifugo"
	if n > 1 {
		name += "+redis"
	}
	return startScript(ctx, o.Script, env, n, &cluster{Name: name, Proto: "centrifugo"}, stderr)
}

// installPeer runs "script install" once before a run, so that a first
// use (npm ci, go install) is not counted against a cluster's start.
func installPeer(ctx context.Context, script string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "bash", script, "install")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s install: %w", script, err)
	}
	return nil
}

// startScript runs "script up" with env added and waits for its "peer
// ready" line, filling cl from the PEER_URLS, PEER_PIDS and PEER_REDIS
// lines before it. Stopping sends SIGTERM to the script, whose trap stops
// the nodes (and Redis); its process group is killed if it lingers.
func startScript(ctx context.Context, script string, env []string, n int, cl *cluster, stderr io.Writer) (*cluster, error) {
	cmd := exec.Command("bash", script, "up")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	// SIGTERM, not SIGKILL, on our death: the script's trap must run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd, syscall.SIGTERM)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", script, err)
	}
	cl.stop = func() {
		stopProcs([]*exec.Cmd{cmd}, syscall.SIGTERM, 10*time.Second)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything the trap missed
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	base := filepath.Base(script)
	timeout := time.NewTimer(3 * time.Minute) // a first run installs packages
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			cl.Stop()
			return nil, ctx.Err()
		case <-timeout.C:
			cl.Stop()
			return nil, fmt.Errorf("%s: no \"peer ready\" in 3 minutes", base)
		case l, ok := <-lines:
			if !ok {
				cl.Stop()
				return nil, fmt.Errorf("%s exited before \"peer ready\"", base)
			}
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "PEER_URLS":
				cl.URLs = splitList(v)
			case "PEER_PIDS":
				for _, p := range splitList(v) {
					pid, _ := strconv.Atoi(p)
					cl.PIDs = append(cl.PIDs, pid)
				}
			case "PEER_REDIS":
				cl.RedisAddr = v
			case "peer ready":
				go func() { // keep the pipe drained
					for range lines {
					}
				}()
				if len(cl.URLs) != n || len(cl.PIDs) != n {
					cl.Stop()
					return nil, fmt.Errorf("%s reported %d urls and %d pids for %d nodes", base, len(cl.URLs), len(cl.PIDs), n)
				}
				return cl, nil
			}
		}
	}
}

// stopProcs signals every process, waits up to grace for all, then kills
// the rest.
func stopProcs(procs []*exec.Cmd, sig syscall.Signal, grace time.Duration) {
	done := make(chan struct{}, len(procs))
	for _, p := range procs {
		_ = p.Process.Signal(sig)
		go func() { _ = p.Wait(); done <- struct{}{} }()
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for range procs {
		select {
		case <-done:
		case <-timer.C:
			for _, p := range procs {
				_ = p.Process.Kill()
			}
			timer.Reset(time.Hour)
			<-done
		}
	}
}

// pollUntil checks cond every 100ms until it holds, limit passes or ctx ends.
func pollUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: pass --meshcast-bin and --peer-script")
		}
		dir = parent
	}
}

// buildMeshcast builds ./cmd/meshcast of the module at root into dir.
func buildMeshcast(ctx context.Context, root, dir string, stderr io.Writer) (string, error) {
	bin := filepath.Join(dir, "meshcast")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshcast")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshcast: %w", err)
	}
	return bin, nil
}
