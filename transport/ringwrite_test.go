package transport

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/meshcast/meshcast/transport/uring"
	"github.com/meshcast/meshcast/transport/wstest"
)

// TestRingRefusedFallsBack: where io_uring_setup is refused (a container's
// seccomp profile answers EPERM), the server says so once and writes with
// write(2): bursts and sends arrive as ever.
func TestRingRefusedFallsBack(t *testing.T) {
	t.Parallel()
	var logs wstest.SyncBuffer
	cfg := testConfig(false)
	cfg.Writers = 3
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.ringSetup = &ringSetup{New: func(uint32) (*uring.Ring, error) { return nil, syscall.EPERM }}
	e := newEnv(t, cfg, false)
	const nconns = 20
	clients, conns := e.dialN(nconns)
	burstsAndSends(t, e, clients, conns, true)
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

// TestFrameLargerThanTheSocket: a frame larger than a socket's send
// buffer can grow goes out in part at once (a short send) and the rest from the
// connection's own blocking writer, complete and in order, whether it was
// claimed by a burst or queued by Send, with every writer.
func TestFrameLargerThanTheSocket(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		cfg.WriteQueueSize = 64 << 20
		e := newEnv(t, cfg, false)
		// Over tcp_wmem's usual maximum (4 MiB): no socket takes it at once.
		const nconns, frames, frameSize = 3, 2, 5 << 20
		clients, conns := e.dialN(nconns)
		results := make(chan error, nconns)
		for _, c := range clients {
			go func() {
				counts, _, err := readSourced(c, 2, 2*frames)
				if err == nil && (counts[0] != frames || counts[1] != frames) {
					err = fmt.Errorf("got %v frames per sender, want %d each", counts, frames)
				}
				results <- err
			}()
		}
		for seq := range frames {
			e.srv.Burst(conns, sourcedFrame(0, seq, frameSize))
			for _, c := range conns {
				if err := c.Send(sourcedFrame(1, seq, frameSize)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for range nconns {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
		if st := e.srv.Stats(); st.BlockedWrites == 0 {
			t.Fatalf("no blocked write: the frames never filled a socket (%+v)", st)
		}
	})
}

// burstsAndSends sends 3 bursts and 3 rounds of Sends to conns, bursts
// first or Sends first, and checks that every client gets all 6 in order.
func burstsAndSends(t *testing.T, e *env, clients []*client, conns []*Conn, burstFirst bool) {
	t.Helper()
	for seq := range 3 {
		if burstFirst {
			e.srv.Burst(conns, sourcedFrame(0, seq, 100))
		}
		for _, c := range conns {
			if err := c.Send(sourcedFrame(1, seq, 50)); err != nil {
				t.Fatal(err)
			}
		}
		if !burstFirst {
			e.srv.Burst(conns, sourcedFrame(0, seq, 100))
		}
	}
	for i, c := range clients {
		if counts, _, err := readSourced(c, 2, 6); err != nil || counts[0] != 3 || counts[1] != 3 {
			t.Fatalf("client %d: %v, %v", i, counts, err)
		}
	}
}
