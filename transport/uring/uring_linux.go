//go:build linux

package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	opRecvmsg = 10
	opSend    = 26
	opRecv    = 27

	setupSubmitAll   = 1 << 7 // go on submitting after a failed SQE
	setupCoopTaskrun = 1 << 8 // no IPI to the submitter for completions; Submit waits in the kernel anyway

	enterGetEvents = 1 << 0

	registerProbe = 8
	opSupported   = 1 << 0

	offSQRing = 0
	offSQEs   = 0x10000000

	featSingleMmap = 1 << 0
)

type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqRingOffsets
	cqOff                                                                  cqRingOffsets
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	pers     uint16
	splice   int32
	addr3    uint64
	_        uint64
}

// cqe is struct io_uring_cqe (16 bytes, no CQE32).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Completion is the result of one operation: the caller's tag and what the
// system call would have returned (bytes, or a negative errno).
type Completion struct {
	User uint64
	Res  int32
}

// Err is the completion's error, nil when Res counts bytes.
func (c Completion) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return syscall.Errno(-c.Res)
}

// probe is struct io_uring_probe with room for the first 64 opcodes.
type probe struct {
	lastOp uint8
	opsLen uint8
	_      uint16
	_      [3]uint32
	ops    [64]struct {
		op    uint8
		_     uint8
		flags uint16
		_     uint32
	}
}

// ErrBroken is returned by Submit once an earlier Submit failed: the ring
// may hold operations the kernel never took, and must be closed.
var ErrBroken = errors.New("uring: ring unusable after a failed submit")

// Ring is one io_uring instance. Not safe for concurrent use.
type Ring struct {
	fd      int
	rings   []byte // SQ and CQ rings (one mapping with FEAT_SINGLE_MMAP)
	sqeMap  []byte
	sqTail  *uint32
	sqHead  *uint32
	sqMask  uint32
	sqes    []sqe
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []cqe
	queued  uint32         // SQEs written since the last Submit
	bufs    [][]byte       // the buffers of the queued operations, kept alive (and on the heap) until Submit returns
	msgs    []*unix.Msghdr // the same for RecvMsg's headers
	entries uint32
	broken  bool
}

// New sets up a ring for up to entries operations per Submit (rounded up
// to a power of two by the kernel).
func New(entries uint32) (*Ring, error) {
	var p params
	p.flags = setupSubmitAll | setupCoopTaskrun
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno == syscall.EINVAL {
		// A kernel older than 5.19 knows neither flag; both are optional.
		p = params{}
		fd, _, errno = unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	}
	if errno != 0 {
		return nil, fmt.Errorf("uring: io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), entries: p.sqEntries, bufs: make([][]byte, p.sqEntries), msgs: make([]*unix.Msghdr, p.sqEntries)}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.probeOps(opSend, opRecv, opRecvmsg); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// probeOps checks that the kernel knows every op: io_uring itself came in
// 5.1, send and recv in 5.6, and an older kernel would fail each of them
// with EINVAL. The probe came in 5.6 too, so its absence says enough.
func (r *Ring) probeOps(ops ...uint8) error {
	var pr probe
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&pr)), uintptr(len(pr.ops)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("uring: kernel too old for send and recv (IORING_REGISTER_PROBE: %w)", errno)
	}
	for _, op := range ops {
		if op > pr.lastOp || pr.ops[op].flags&opSupported == 0 {
			return fmt.Errorf("uring: kernel without io_uring op %d", op)
		}
	}
	return nil
}

func (r *Ring) mmap(p *params) error {
	if p.features&featSingleMmap == 0 {
		return errors.New("uring: kernel without IORING_FEAT_SINGLE_MMAP (older than 5.4)")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	var err error
	r.rings, err = unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap rings: %w", err)
	}
	r.sqeMap, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap sqes: %w", err)
	}
	base := unsafe.Pointer(&r.rings[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMap[0])), p.sqEntries)
	// The SQ array maps ring slots to SQE indexes; slot i always uses SQE i.
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// Close releases the ring.
func (r *Ring) Close() error {
	if r.sqeMap != nil {
		_ = unix.Munmap(r.sqeMap)
		r.sqeMap = nil
	}
	if r.rings != nil {
		_ = unix.Munmap(r.rings)
		r.rings = nil
	}
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}

// Cap is how many operations one Submit takes.
func (r *Ring) Cap() int { return int(r.entries) }

// Send queues a non-blocking send(2) of p on fd (MSG_DONTWAIT|MSG_NOSIGNAL:
// a full socket completes with EAGAIN, a closed peer with EPIPE, no signal).
// It reports false when Cap operations are already queued.
func (r *Ring) Send(fd int, p []byte, user uint64) bool {
	return r.prep(opSend, fd, p, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, user)
}

// Recv queues a non-blocking recv(2) into p (EAGAIN when nothing is there,
// 0 at end of stream).
func (r *Ring) Recv(fd int, p []byte, user uint64) bool {
	return r.prep(opRecv, fd, p, unix.MSG_DONTWAIT, user)
}

// RecvMsg queues a non-blocking recvmsg(2) with msg: Recv with the
// ancillary data a recv cannot return, such as receive timestamps. The
// kernel fills msg's buffers and updates its Controllen and Flags; msg and
// what it points to must not change until Submit returns.
func (r *Ring) RecvMsg(fd int, msg *unix.Msghdr, user uint64) bool {
	if !r.prep(opRecvmsg, fd, nil, unix.MSG_DONTWAIT, user) {
		return false
	}
	s := &r.sqes[(*r.sqTail+r.queued-1)&r.sqMask]
	s.addr = uint64(uintptr(unsafe.Pointer(msg)))
	s.len = 1 // one msghdr
	r.msgs[r.queued-1] = msg
	return true
}

func (r *Ring) prep(op uint8, fd int, p []byte, flags uint32, user uint64) bool {
	if r.queued == r.entries || r.broken {
		return false
	}
	tail := *r.sqTail + r.queued // only this goroutine moves the tail
	s := &r.sqes[tail&r.sqMask]
	*s = sqe{opcode: op, fd: int32(fd), len: uint32(len(p)), msgFlags: flags, userData: user}
	if len(p) > 0 {
		s.addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	}
	r.bufs[r.queued] = p
	r.queued++
	return true
}

// Submit hands every queued operation to the kernel in one system call and
// waits for all of them (each was done at once or failed with EAGAIN, so
// the wait is the call itself). It appends their completions to out, in
// no particular order, and returns it.
//
// If io_uring_enter fails, out holds the completions that were posted (the
// operations that were done); the others were never taken by the kernel,
// and the ring is broken: later Submits return ErrBroken, and it should be
// closed.
func (r *Ring) Submit(out []Completion) ([]Completion, error) {
	n := r.queued
	defer clear(r.bufs[:n])
	defer clear(r.msgs[:n])
	if r.broken {
		r.queued = 0
		return out, ErrBroken
	}
	if n == 0 {
		return out, nil
	}
	atomic.StoreUint32(r.sqTail, *r.sqTail+n) // release: the SQEs are written
	r.queued = 0
	submitted, want := uint32(0), n
	for want > 0 {
		got, err := r.enter(n-submitted, want)
		if err != nil {
			r.broken = true
			out, _ = r.reap(out, want)
			return out, err
		}
		submitted += got
		out, want = r.reap(out, want)
	}
	return out, nil
}

// enter submits toSubmit SQEs and waits for at least one completion of the
// ones still wanted. EINTR is retried; io_uring_enter reports a signal
// after submitting as a short wait, not an error, so nothing is lost.
func (r *Ring) enter(toSubmit, want uint32) (uint32, error) {
	for {
		got, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(want), enterGetEvents, 0, 0)
		switch errno {
		case 0:
			return uint32(got), nil
		case syscall.EINTR:
			continue
		default:
			return 0, fmt.Errorf("uring: io_uring_enter: %w", errno)
		}
	}
}

// reap moves the posted completions to out.
func (r *Ring) reap(out []Completion, want uint32) ([]Completion, uint32) {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail) // acquire: the CQEs are written
	for ; head != tail && want > 0; head++ {
		c := &r.cqes[head&r.cqMask]
		out = append(out, Completion{User: c.userData, Res: c.res})
		want--
	}
	atomic.StoreUint32(r.cqHead, head)
	return out, want
}
