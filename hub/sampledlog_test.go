package hub

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/internal/wait"
	"github.com/meshcast/meshcast/transport/wstest"
)

// TestRefusalsAreNotLoggedOneLineEach: clients refused over a connection
// limit or for their origin are counted, and logged at info once per
// kind, not once each: a node at --max-connections met by thousands of
// reconnecting clients wrote a line for every one of them.
func TestRefusalsAreNotLoggedOneLineEach(t *testing.T) {
	logs := &wstest.SyncBuffer{}
	cfg := DefaultConfig()
	cfg.Security = SecurityConfig{MaxConnections: 1}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)) // info
	h, url := testHub(t, cfg)
	dial(t, url)
	const n = 30
	for range n {
		mustRefuse(t, url, http.StatusServiceUnavailable, "too many connections on this node")
		if got, _ := refusal(t, url, http.Header{"Origin": {"https://evil.example"}}); got != http.StatusForbidden {
			t.Fatalf("foreign origin: status %d", got)
		}
	}
	if got := h.Stats().RefusedLimit; got != n {
		t.Fatalf("refused_limit %d, want %d", got, n)
	}
	for _, reason := range []string{"too many connections on this node", "origin not allowed"} {
		if got := logs.Lines("level=INFO", "refused connection", reason); len(got) != 1 {
			t.Fatalf("%d lines at info for %q, want 1:\n%s", len(got), reason, strings.Join(got, "\n"))
		}
	}
}

// TestSlowConsumerIsLogged: a client cut off as a slow consumer was only
// counted; the operator asked why a client was disconnected found
// nothing in the log. The first is logged at info with its client id and
// address, the next within sampleEvery at debug only.
func TestSlowConsumerIsLogged(t *testing.T) {
	logs := &wstest.SyncBuffer{}
	cfg := DefaultConfig()
	cfg.Transport.WriteQueueSize = 64 << 10
	cfg.Transport.MaxMessageSize = 16 << 10
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, url := testHub(t, cfg)
	for range 2 { // subscribe, then never read again
		dial(t, url).MustAck(`{"op":"sub","ch":"firehose","id":1}`)
	}
	data := []byte(`"` + strings.Repeat("x", 4000) + `"`)
	deadline := time.Now().Add(wait.Scaled(30 * time.Second))
	for h.Stats().Transport.SlowConsumerCloses < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("slow consumers cut off: %d of 2", h.Stats().Transport.SlowConsumerCloses)
		}
		_ = h.Publish(context.Background(), "firehose", data)
	}
	// "client gone" comes after the slow consumer's own line.
	waitFor(t, 5*time.Second, "both clients gone", func() bool { return len(logs.Lines("client gone", "slow consumer")) == 2 })
	got := logs.Lines("level=INFO", "slow consumer")
	if len(got) != 1 || len(logs.Lines("level=DEBUG", "cut off as a slow consumer")) != 1 || !strings.Contains(got[0], "client=") ||
		!strings.Contains(got[0], "remote=127.0.0.1:") {
		t.Fatalf("want one line at info naming the client and its address, the other at debug:\n%s",
			strings.Join(logs.Lines("slow consumer"), "\n"))
	}
}
