package transport

import (
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/transport/uring"
	"github.com/meshcast/meshcast/transport/wstest"
)

// TestRingFailureFallsBack: a writer whose ring fails (io_uring_enter
// errors) sends what the ring did not take with write(2), closes no
// connection, says so once at Warn and goes on without the ring; whether
// the ring failed on a burst's chunk or on connections from the ready
// list.
func TestRingFailureFallsBack(t *testing.T) {
	t.Run("burst first", func(t *testing.T) { testRingFailure(t, true) })
	t.Run("sends first", func(t *testing.T) { testRingFailure(t, false) })
}

func testRingFailure(t *testing.T, burstFirst bool) {
	var logs wstest.SyncBuffer
	cfg := testConfig(false)
	cfg.Writers = 2
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var mu sync.Mutex
	cfg.ringSetup = &ringSetup{New: func(n uint32) (*uring.Ring, error) {
		mu.Lock()
		defer mu.Unlock()
		return brokenRing(t, n), nil
	}}
	e := newEnv(t, cfg, false)
	const nconns = 20
	clients, conns := e.dialN(nconns)
	burstsAndSends(t, e, clients, conns, burstFirst)
	st := e.srv.Stats()
	if st.RingWrites != 0 || st.Conns != nconns {
		t.Fatalf("%d ring writes, %d connections left of %d", st.RingWrites, st.Conns, nconns)
	}
	if n := strings.Count(logs.String(), "io_uring_enter failed"); n < 1 || n > cfg.Writers {
		t.Fatalf("%d warnings about the ring, want 1 per writer that used it:\n%s", n, logs.String())
	}
}

// brokenRing makes a ring whose descriptor no longer is one: the ring's
// file stays mapped, but io_uring_enter on the number fails (the number
// now names /dev/null). Callers serialise, so the new io_uring descriptor
// is the one that appeared during the call.
func brokenRing(t *testing.T, n uint32) *uring.Ring {
	before := ringFDs(t)
	r, err := uring.New(n)
	if err != nil {
		t.Skipf("io_uring not available here: %v", err)
	}
	for _, fd := range ringFDs(t) {
		if !slices.Contains(before, fd) {
			null, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer null.Close()
			if err := unix.Dup2(int(null.Fd()), fd); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatal("no new io_uring descriptor")
	return nil
}

// ringFDs lists this process's io_uring descriptors.
func ringFDs(t *testing.T) []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var fds []int
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:[io_uring]" {
			fd, _ := strconv.Atoi(e.Name())
			fds = append(fds, fd)
		}
	}
	return fds
}
