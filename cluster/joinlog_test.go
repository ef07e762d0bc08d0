package cluster

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestJoinedByOthersLogsReady: a node whose seeds were not up yet, and
// that the others then joined, says when it is ready. Before, the first
// node of the README's 3-node cluster logged "no seed could be joined
// yet" and then only the others' arrivals: nothing said it had left
// "joining" (its /readyz said 503 until then).
func TestJoinedByOthersLogsReady(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String() // a seed that refuses: nothing listens there now
	closed.Close()
	logs := &logCapture{}
	cfg := testConfig("first")
	cfg.Join = []string{down}
	cfg.JoinTimeout = time.Minute // it must be joined, not give up
	cfg.Logger = slog.New(logs)
	first := startNode(t, cfg)
	waitFor(t, 10*time.Second, "a failed join attempt", func() bool {
		return logs.attr(slog.LevelInfo, "no seed could be joined yet; retrying", "seeds") != ""
	})
	if err := first.standing(); err == nil {
		t.Fatal("ready before anyone joined")
	}

	second := testConfig("second")
	second.Join = []string{first.gossipAddr()}
	startNode(t, second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.ready(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logs.attr(slog.LevelInfo, "joined the cluster and linked with every member: ready", "members"); got != "2" {
		t.Fatalf("members in the ready line: %q, want 2; log:\n%s", got, strings.Join(logs.since(0, slog.LevelInfo), "\n"))
	}
}
