//go:build linux

package transport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func newRawReader(size int) *rawReader {
	r := &rawReader{buf: make([]byte, size)}
	r.fn = r.do
	return r
}

// do is the RawConn.Read callback: one read, and true so it never parks.
func (r *rawReader) do(fd uintptr) bool {
	for {
		r.n, r.err = unix.Read(int(fd), r.buf)
		if r.err != unix.EINTR {
			break
		}
	}
	if r.err == unix.EAGAIN {
		r.n, r.err = 0, errWouldBlock
	}
	if r.n < 0 {
		r.n = 0
	}
	return true
}

// read reads once; n == 0 with a nil error is EOF.
func (r *rawReader) read(rc syscall.RawConn) (int, error) {
	if err := rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

func newRawWriter(size int) *rawWriter {
	w := &rawWriter{buf: make([]byte, size)}
	w.fn = func(fd uintptr) { w.do(fd) }
	return w
}

// do writes until done or EAGAIN, never parking.
func (w *rawWriter) do(fd uintptr) bool {
	w.n, w.err = 0, nil
	for w.n < len(w.p) {
		m, err := unix.Write(int(fd), w.p[w.n:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			w.err = errWouldBlock
			return true
		}
		if err != nil {
			w.err = err
			return true
		}
		w.n += m
	}
	return true
}

// write writes p without blocking: n bytes went out, errWouldBlock if the
// socket is full. rc nil (no fd) always would block. It writes from
// RawConn.Control, which only keeps the fd open, rather than RawConn.Write,
// which also takes the fd's write lock and resets its poller state: the
// writing flag already makes the caller the only writer, do never parks,
// and a delivery's write is a few µs, so that is a tenth of it saved.
func (w *rawWriter) write(rc syscall.RawConn, p []byte) (int, error) {
	if rc == nil {
		return 0, errWouldBlock
	}
	w.p = p
	err := rc.Control(w.fn)
	w.p = nil
	if err != nil {
		return 0, err
	}
	return w.n, w.err
}
