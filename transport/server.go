package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Handler receives one connection's events (the hub's session implements
// it). For one connection calls never overlap and come in order: OnOpen,
// OnMessage..., OnClose exactly once. See the package doc for which
// goroutine calls each.
type Handler interface {
	// OnOpen runs after the handshake, before any frame is handled, on the
	// goroutine calling Upgrade. It may call c.Send (the hub sends "hello"
	// here) and c.Close.
	OnOpen(c *Conn)
	// OnMessage gets one complete, reassembled text message, valid UTF-8.
	// msg is only valid during the call.
	OnMessage(msg []byte)
	// OnClose gets a *CloseError saying why the connection closed.
	OnClose(err error)
}

// wakeID tags the eventfd's epoll registration; connection ids skip it.
const wakeID = 0

// Server upgrades HTTP requests to WebSocket connections and runs their
// reading, writing and keepalive. Create it with NewServer, stop it with
// Shutdown.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader ws.HTTPUpgrader
	poll     *poller // nil in goroutine mode
	ping     []byte  // shared ping frame

	// mu guards closed and the registry (conns, nextID).
	mu     sync.RWMutex
	closed bool
	conns  map[uint32]*Conn
	nextID uint32

	work  connQueue // connections for the read workers (epoll mode)
	ready connQueue // connections with frames to write

	bursting atomic.Int32 // bursts being written (Burst)

	batches sync.Pool // *batch
	scratch sync.Pool // *[]byte for blocking writers

	connWG   sync.WaitGroup // one per registered connection until torn down
	wg       sync.WaitGroup // every goroutine the server starts
	stop     chan struct{}  // closed to stop the sweep
	stopOnce sync.Once
	stats    counters

	ringRefused atomic.Bool // io_uring_setup failed once: no writer tries again
}

// MaxMessageSize is the largest message a connection may send: the
// configured one, or its default.
func (s *Server) MaxMessageSize() int { return s.cfg.MaxMessageSize }

// NewServer starts the epoll loop and its read workers (unless
// cfg.UseGoroutines or not Linux), the shared writers and the keepalive
// sweep. A cfg with a negative field gives an error wrapping
// ErrInvalidConfig.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if !pollSupported {
		cfg.UseGoroutines = true
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		upgrader: ws.HTTPUpgrader{Timeout: cfg.HandshakeTimeout},
		ping:     controlFrame(opPing, nil),
		conns:    make(map[uint32]*Conn),
		stop:     make(chan struct{}),
	}
	s.work.init()
	s.ready.init()
	s.batches.New = func() any { return &batch{frames: make([][]byte, 0, 8)} }
	s.scratch.New = func() any { b := make([]byte, blockedScratchSize); return &b }
	if !cfg.UseGoroutines {
		p, err := newPoller()
		if err != nil {
			return nil, err
		}
		s.poll = p
		s.wg.Add(1 + cfg.Workers)
		go s.pollLoop()
		for range cfg.Workers {
			go s.workLoop()
		}
	}
	s.wg.Add(1 + cfg.Writers)
	go s.sweepLoop()
	for range cfg.Writers {
		go s.writeLoop()
	}
	return s, nil
}

// Upgrade performs the WebSocket handshake on r (hijacking the connection),
// calls h.OnOpen and then starts reading. When the handshake fails it has
// written the HTTP error response itself (503 once Shutdown began) and
// returns the error, which wraps ErrNotHijacker when w cannot be hijacked.
// When Shutdown begins during the handshake, the upgraded connection is
// closed without a close frame and ErrClosed returned; h is not called.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, h Handler) (*Conn, error) {
	if s.isClosed() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil, ErrClosed
	}
	nc, rw, _, err := s.upgrader.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		s.stats.upgradeErrors.Add(1)
		if errors.Is(err, ws.ErrNotHijacker) {
			err = ErrNotHijacker
		}
		return nil, fmt.Errorf("transport: upgrade: %w", err)
	}
	// The HTTP server's deadlines (ReadTimeout and the like) must not
	// outlive the upgrade: from here on pings and write timeouts govern.
	// gobwas clears them too; this keeps it true whatever the upgrader.
	_ = nc.SetDeadline(time.Time{})
	c := &Conn{srv: s, nc: nc, h: h, p: parser{max: s.cfg.MaxMessageSize}}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.polled = s.poll != nil && c.rc != nil
	c.rstate.Store(readBusy) // Upgrade reads first: buffered bytes below
	c.touch()
	// Bytes the client sent right after its request sit in the hijacked
	// reader; take them and drop the bufio reader and writer.
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
	}
	if err := s.register(c); err != nil {
		_ = nc.Close()
		return nil, err
	}
	s.stats.upgrades.Add(1)
	h.OnOpen(c)
	if len(early) > 0 && !c.closing() {
		c.handleBytes(early)
	}
	s.startReading(c)
	return c, nil
}

// startReading hands the connection to epoll or to its reader goroutine.
func (s *Server) startReading(c *Conn) {
	if c.polled {
		c.releaseRead(true)
		return
	}
	go c.readLoop() // wg counted in register
}

// register adds c to the registry unless Shutdown began.
func (s *Server) register(c *Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for {
		s.nextID++
		if s.nextID != wakeID && s.conns[s.nextID] == nil {
			break
		}
	}
	c.id = s.nextID
	s.conns[c.id] = c
	s.connWG.Add(1)
	if !c.polled {
		s.wg.Add(1)
	}
	return nil
}

func (s *Server) unregister(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
}

func (s *Server) lookup(id uint32) *Conn {
	s.mu.RLock()
	c := s.conns[id]
	s.mu.RUnlock()
	return c
}

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// snapshot appends every registered connection to dst.
func (s *Server) snapshot(dst []*Conn) []*Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.conns {
		dst = append(dst, c)
	}
	return dst
}

// Shutdown stops new upgrades (they get 503), closes every connection not
// already closing with 1001 "going away" after its queued frames, waits for
// each OnClose and each socket's close (a client that does not close its
// side holds it for Config.CloseLinger at most), stops every goroutine and
// waits for them. When ctx ends
// first, remaining sockets are closed without flushing, OnClose is still
// waited for, and an error wrapping ctx's is returned. Idempotent. Not from a
// Handler method (see the package doc).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	conns := s.snapshot(nil)
	for _, c := range conns {
		c.closeWith(&CloseError{Code: CloseGoingAway, Reason: ReasonGoingAway}, true, false)
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("transport: shutdown: %w", ctx.Err())
		for _, c := range conns {
			c.terminate()
		}
		<-done
	}
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.poll != nil {
			s.poll.wake()
		}
		s.work.close()
		s.ready.close()
		s.wg.Wait()
		if s.poll != nil {
			s.poll.close()
		}
	})
	s.wg.Wait()
	return err
}

// pollLoop feeds readable connections to the workers.
func (s *Server) pollLoop() {
	defer s.wg.Done()
	err := s.poll.run(func(id uint32) {
		c := s.lookup(id)
		if c != nil && (c.rstate.CompareAndSwap(readArmed, readBusy) ||
			c.rstate.CompareAndSwap(readLinger, readDraining)) {
			s.work.push(c)
		}
	})
	if err != nil {
		s.log.Error("transport: epoll loop stopped", "err", err)
	}
}

// workLoop is one read worker.
func (s *Server) workLoop() {
	defer s.wg.Done()
	r := newRawReader(readBufSize)
	s.work.drain(func(c *Conn) { c.serve(r) })
}

// watch registers (first) or re-arms the connection in epoll.
func (s *Server) watch(c *Conn, first bool) error {
	// Once re-armed, the connection may already be on another worker: touch
	// nothing of c after arm.
	if first {
		c.added.Store(true)
	}
	return control(c.rc, func(fd int) error {
		return s.poll.arm(fd, c.id, first)
	})
}

// unwatch removes the connection from epoll before its socket closes.
func (s *Server) unwatch(c *Conn) {
	err := control(c.rc, s.poll.del)
	if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("transport: epoll_ctl del", "err", err)
	}
}

func (s *Server) getBatch() *batch { return s.batches.Get().(*batch) }

func (s *Server) putBatch(b *batch) {
	if cap(b.frames) > maxPooledFrames {
		return
	}
	b.reset()
	s.batches.Put(b)
}
