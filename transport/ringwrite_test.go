package transport

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/meshcast/meshcast/transport/uring"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRingRefusedFallsBack: where io_uring_setup is refused (a container's
// seccomp profile answers EPERM), the server says so once and writes with
// write(2): bursts and sends arrive as ever.
func TestRingRefusedFallsBack(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	cfg := testConfig(false)
	cfg.Writers = 3
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.ringSetup = &ringSetup{New: func(uint32) (*uring.Ring, error) { return nil, syscall.EPERM }}
	e := newEnv(t, cfg, false)
	const nconns = 20
	clients := make([]*client, nconns)
	for i := range clients {
		clients[i] = e.dial()
	}
	conns := e.conns(nconns)
	for seq := range 3 {
		e.srv.Burst(conns, sourcedFrame(0, seq, 100))
		for _, c := range conns {
			if err := c.Send(sourcedFrame(1, seq, 50)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range clients {
		if counts, _, err := readSourced(c, 2, 6); err != nil || counts[0] != 3 || counts[1] != 3 {
			t.Fatalf("client %d: %v, %v", i, counts, err)
		}
	}
	if n := e.srv.Stats().RingWrites; n != 0 {
		t.Fatalf("%d ring writes with io_uring refused", n)
	}
	if n := strings.Count(logs.String(), "io_uring unavailable"); n != 1 {
		t.Fatalf("%d log lines about io_uring, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "operation not permitted") {
		t.Fatalf("the log does not say why:\n%s", logs.String())
	}
}
