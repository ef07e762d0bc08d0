//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/transport/uring"
)

// rawReadSupported: --reader epoll works on this platform.
const rawReadSupported = true

// rawBufSize is one poll loop's read buffer; rawMaxFrame the largest frame
// it takes (the bench's messages are a few hundred bytes).
const (
	rawBufSize  = 256 << 10
	rawMaxFrame = 64 << 10
)

// rawConn is a subscriber read by a poll loop: its own duplicate of the
// socket (the net.Conn is closed, so Go's poller no longer sees it) and the
// bytes of a frame not complete yet.
type rawConn struct {
	fd   int
	s    *subscriber
	rest []byte
	mask uint32 // xorshift state for the mask keys of pongs
	wbuf []byte
}

// pollLoop reads many subscribers with one epoll instance, one read per
// ready socket, in batches: a delivery costs a share of an epoll_wait and a
// read, nothing allocated, no goroutine woken per socket.
type pollLoop struct {
	w    *worker
	epfd int

	ring  *uring.Ring // --reader uring: reads ready sockets in batches
	rbuf  []byte      // the ring's read regions, ringRegion each
	batch []*rawConn  // the ready sockets of the batch being read
	comps []uring.Completion

	// --arrival kernel: reads are recvmsg(2)s that bring the kernel's
	// receive timestamp; one header, iovec and control region per ring
	// slot (oob[0] for readOnce).
	stamps bool
	msgs   []unix.Msghdr
	iovs   []unix.Iovec
	oob    []byte

	mu    sync.Mutex
	conns map[int]*rawConn // by fd
}

// rawLoop starts the worker's poll loop on first use.
func (w *worker) rawLoop() (*pollLoop, error) {
	w.rawOnce.Do(func() {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			w.rawErr = fmt.Errorf("epoll_create1: %w", err)
			return
		}
		w.raw = &pollLoop{w: w, epfd: epfd, conns: map[int]*rawConn{}, stamps: w.cfg.Arrival == arrivalKernel}
		if w.raw.stamps {
			w.raw.msgs = make([]unix.Msghdr, ringBatch)
			w.raw.iovs = make([]unix.Iovec, ringBatch)
			w.raw.oob = make([]byte, ringBatch*oobRegion)
		}
		if w.cfg.Reader == readerUring {
			if w.raw.ring, err = uring.New(ringBatch); err != nil {
				unix.Close(epfd)
				w.rawErr = err
				return
			}
			w.raw.rbuf = make([]byte, ringBatch*ringRegion)
		}
		w.wg.Add(1)
		go w.raw.run()
	})
	return w.raw, w.rawErr
}

// handOff moves an acknowledged subscriber's connection to the poll loop:
// what the bufio reader holds is taken as the start of the stream, the
// socket duplicated, the net.Conn closed. It reports false (and leaves c
// as it was) when that fails, for the caller to go on reading c itself.
func (w *worker) handOff(s *subscriber, c *wsConn) bool {
	pl, err := w.rawLoop()
	if err != nil {
		return false
	}
	fd, err := dupFD(c)
	if err != nil {
		return false
	}
	if pl.stamps {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return false
		}
	}
	pending, _ := c.fr.br.Peek(c.fr.br.Buffered())
	rc := &rawConn{fd: fd, s: s, rest: append(make([]byte, 0, 512), pending...), mask: c.mask}
	w.connsMu.Lock()
	delete(w.conns, c)
	w.connsMu.Unlock()
	c.close()
	// Complete frames that came with the ack are handled here, before the
	// loop can see the socket.
	if !pl.consume(rc, rc.rest, 0, time.Now().UnixNano()) {
		unix.Close(fd)
		w.lostConn(s, nil)
		return true
	}
	pl.mu.Lock()
	pl.conns[fd] = rc
	pl.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		pl.drop(rc, err)
	}
	return true
}

// run waits for readable sockets until the worker's context ends, then
// closes every socket it owns.
func (pl *pollLoop) run() {
	defer pl.w.wg.Done()
	if pl.w.cfg.ReaderIdle {
		pl.runIdle()
		defer pl.endIdle()
	}
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, rawBufSize)
	for pl.w.ctx.Err() == nil {
		n, err := unix.EpollWait(pl.epfd, events, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		if n <= 0 {
			continue
		}
		pl.mu.Lock()
		if pl.ring != nil {
			pl.readRing(events[:n], buf)
		} else {
			for i := range n {
				if rc := pl.conns[int(events[i].Fd)]; rc != nil {
					pl.readOnce(rc, buf)
				}
			}
		}
		pl.mu.Unlock()
	}
	if pl.ring != nil {
		pl.ring.Close()
	}
	pl.mu.Lock()
	for _, rc := range pl.conns {
		unix.Close(rc.fd)
	}
	clear(pl.conns)
	pl.mu.Unlock()
	unix.Close(pl.epfd)
}

// runIdle (--reader-idle) locks the loop to its thread and puts the
// thread under SCHED_IDLE: it reads only when no other thread wants the
// core. While it holds mu or is stopped in Go code, a hand-off or a GC
// stop-the-world waits for it; at the rates it is meant for it mostly
// waits in epoll_wait.
func (pl *pollLoop) runIdle() {
	runtime.LockOSThread()
	idle := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, &idle, 0); err != nil {
		fmt.Fprintf(os.Stderr, "--reader-idle: sched_setattr: %v; reading at normal priority\n", err)
	}
}

// endIdle gives the thread back to Go at normal priority. Without
// CAP_SYS_NICE (or an RLIMIT_NICE that allows it) the kernel refuses that:
// the thread then stays locked, and Go ends it with the loop's goroutine,
// so no other goroutine ever runs under SCHED_IDLE.
func (pl *pollLoop) endIdle() {
	if backToNormal() {
		runtime.UnlockOSThread()
	}
}

// backToNormal puts the calling thread back under SCHED_NORMAL, and
// reports whether the kernel let it.
func backToNormal() bool {
	normal := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
	return unix.SchedSetAttr(0, &normal, 0) == nil
}

// readOnce reads what one socket has (level-triggered: a rest beyond the
// buffer is reported again) and handles every complete frame. Caller
// holds mu.
func (pl *pollLoop) readOnce(rc *rawConn, buf []byte) {
	k := copy(buf, rc.rest)
	var n int
	var err error
	var arrival int64
	if pl.stamps {
		oob := pl.oob[:oobRegion]
		var oobn int
		n, oobn, _, _, err = unix.Recvmsg(rc.fd, buf[k:], oob, unix.MSG_DONTWAIT)
		arrival = kernelStamp(oob[:max(oobn, 0)])
	} else {
		n, err = unix.Read(rc.fd, buf[k:])
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return
	}
	if err != nil || n == 0 {
		pl.dropLocked(rc, err)
		return
	}
	if !pl.consume(rc, buf[:k+n], arrival, time.Now().UnixNano()) {
		pl.dropLocked(rc, nil)
	}
}

// oobRegion is room for one recvmsg's control data: a timestamp is 32
// bytes with its header.
const oobRegion = 64

// kernelStamp is the SCM_TIMESTAMPNS of a recvmsg's control data in unix
// nanoseconds, 0 if there is none (the socket had no data stamped, e.g.
// before the kernel turned stamping on). For TCP it is the receive time of
// the last segment the read took, so a frame completed by the read arrived
// then, and earlier frames in the same read no later.
func kernelStamp(oob []byte) int64 {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < hdr || n > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && n >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			return (*unix.Timespec)(unsafe.Pointer(&oob[hdr])).Nano()
		}
		oob = oob[min(unix.CmsgSpace(n-hdr), len(oob)):]
	}
	return 0
}

// ringBatch is how many ready sockets one io_uring_enter reads; ringRegion
// each one's share of the read buffer (a socket with more waiting is
// reported ready again).
const (
	ringBatch  = 64
	ringRegion = 16 << 10
)

// readRing is readOnce for every ready socket of events, ringBatch reads
// per io_uring_enter: a delivery costs a share of one system call instead
// of a read(2) of its own. A socket holding a partial frame of more than
// half a region is read alone into buf. Caller holds mu.
func (pl *pollLoop) readRing(events []unix.EpollEvent, buf []byte) {
	for len(events) > 0 {
		pl.batch = pl.batch[:0]
		for len(events) > 0 && len(pl.batch) < ringBatch {
			rc := pl.conns[int(events[0].Fd)]
			events = events[1:]
			switch {
			case rc == nil:
			case len(rc.rest) > ringRegion/2:
				pl.readOnce(rc, buf)
			default:
				i := len(pl.batch)
				region := pl.rbuf[i*ringRegion : (i+1)*ringRegion]
				k := copy(region, rc.rest)
				if pl.stamps {
					iov, m := &pl.iovs[i], &pl.msgs[i]
					iov.Base = &region[k]
					iov.SetLen(len(region) - k)
					*m = unix.Msghdr{Iov: iov, Control: &pl.oob[i*oobRegion]}
					m.SetIovlen(1)
					m.SetControllen(oobRegion)
					pl.ring.RecvMsg(rc.fd, m, uint64(i))
				} else {
					pl.ring.Recv(rc.fd, region[k:], uint64(i))
				}
				pl.batch = append(pl.batch, rc)
			}
		}
		comps, err := pl.ring.Submit(pl.comps[:0])
		pl.comps = comps[:0]
		now := time.Now().UnixNano()
		if err != nil {
			// The reads the kernel took are in comps; the others are
			// not done, and the ring is broken: the loop goes on with
			// read(2), and level-triggered epoll reports those sockets
			// again.
			fmt.Fprintf(os.Stderr, "--reader uring: %v; reading with read(2) from now on\n", err)
			pl.ring.Close()
			pl.ring = nil
		}
		for _, c := range comps {
			rc := pl.batch[c.User]
			err := c.Err()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || c.Res == 0 {
				pl.dropLocked(rc, err)
				continue
			}
			region := pl.rbuf[int(c.User)*ringRegion:]
			var arrival int64
			if pl.stamps {
				off := int(c.User) * oobRegion
				arrival = kernelStamp(pl.oob[off : off+min(int(pl.msgs[c.User].Controllen), oobRegion)])
			}
			if !pl.consume(rc, region[:len(rc.rest)+int(c.Res)], arrival, now) {
				pl.dropLocked(rc, nil)
			}
		}
		if pl.ring == nil {
			for _, ev := range events {
				if rc := pl.conns[int(ev.Fd)]; rc != nil {
					pl.readOnce(rc, buf)
				}
			}
			return
		}
	}
}

// consume handles the complete frames of data (read at now, arrived at
// arrival, 0 when unknown) and keeps the incomplete
// tail in rc.rest; false when the connection must end (a close frame, a
// bad or oversized frame).
//
// It runs on the loop and, for a connection being handed off, on the
// subscriber's goroutine at the same time: it keeps no state in pl.
func (pl *pollLoop) consume(rc *rawConn, data []byte, arrival, now int64) bool {
	// Deliveries in frames before the read's last one carry that frame's
	// stamp: they are counted as read together (the messages of one
	// frame came in one segment, so their stamp is exact).
	st := pl.w.step.Load()
	timed, last := 0, 0
	defer func() {
		if arrival != 0 && timed > last {
			st.coalesced.Add(int64(timed - last))
		}
	}()
	for len(data) >= 2 {
		fin, op := data[0]&0x80 != 0, ws.OpCode(data[0]&0x0f)
		if data[0]&0x70 != 0 || data[1]&0x80 != 0 || !fin || op == ws.OpContinuation {
			return false // the servers send neither masked nor fragmented frames
		}
		hl, n := 2, uint64(data[1]&0x7f)
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if len(data) < hl {
			break
		}
		switch hl {
		case 4:
			n = uint64(binary.BigEndian.Uint16(data[2:]))
		case 10:
			n = binary.BigEndian.Uint64(data[2:])
		}
		if n > rawMaxFrame {
			return false
		}
		if uint64(len(data)-hl) < n {
			break
		}
		p := data[hl : hl+int(n)]
		data = data[hl+int(n):]
		ok, inFrame := pl.frame(rc, op, p, arrival, now)
		if !ok {
			return false
		}
		if inFrame > 0 {
			timed, last = timed+inFrame, inFrame
		}
	}
	rc.rest = append(rc.rest[:0], data...)
	return true
}

// frame handles one frame: deliveries are counted and timed (how many
// were timed is returned), pings answered, a close ends the connection.
func (pl *pollLoop) frame(rc *rawConn, op ws.OpCode, p []byte, arrival, now int64) (ok bool, timed int) {
	w := pl.w
	switch op {
	case ws.OpPing:
		rc.write(ws.OpPong, p)
		return true, 0
	case ws.OpPong:
		return true, 0
	case ws.OpClose:
		rc.write(ws.OpClose, p[:min(len(p), 2)])
		return false, 0
	}
	for rest := p; len(rest) > 0; { // a frame may carry several messages (proto.next)
		var msg []byte
		msg, rest = w.proto.next(rest)
		switch w.proto.kind(msg) {
		case kindMsg:
			if w.deliverAt(rc.s, msg, arrival, now) {
				timed++
			}
		case kindPing:
			rc.write(ws.OpText, w.proto.pong())
		}
	}
	return true, timed
}

// write sends one small masked frame without blocking; a full socket
// drops it (a pong: the next ping gets another).
func (rc *rawConn) write(op ws.OpCode, p []byte) {
	x := rc.mask
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	rc.mask = x
	rc.wbuf = appendClientFrame(rc.wbuf[:0], op, p, [4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)})
	_, _ = unix.Write(rc.fd, rc.wbuf)
}

func (pl *pollLoop) drop(rc *rawConn, err error) {
	pl.mu.Lock()
	pl.dropLocked(rc, err)
	pl.mu.Unlock()
}

// dropLocked ends a connection the loop owns. Caller holds mu.
func (pl *pollLoop) dropLocked(rc *rawConn, err error) {
	if pl.conns[rc.fd] != rc {
		return
	}
	delete(pl.conns, rc.fd)
	_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, rc.fd, nil)
	unix.Close(rc.fd)
	pl.w.lostConn(rc.s, err)
}

// dupFD duplicates c's socket (close-on-exec); the duplicate shares the
// open file, so it is non-blocking like the original.
func dupFD(c *wsConn) (int, error) {
	sc, ok := c.nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return -1, errors.New("no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return nfd, derr
}
