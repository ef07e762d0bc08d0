//go:build linux

package transport

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

const epollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// poller is one epoll instance plus an eventfd that stops its loop.
type poller struct {
	epfd int
	evfd int
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("transport: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("transport: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd), Pad: wakeID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("transport: epoll_ctl eventfd: %w", err)
	}
	return &poller{epfd: epfd, evfd: evfd}, nil
}

// arm registers (add) or re-arms fd for one readiness report, tagged with
// the connection's id: fd numbers are reused at once, ids only after the
// 32-bit counter wraps and never while their connection is registered.
func (p *poller) arm(fd int, id uint32, add bool) error {
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: epollEvents, Fd: int32(fd), Pad: int32(id)}
	return unix.EpollCtl(p.epfd, op, fd, &ev)
}

func (p *poller) del(fd int) error {
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run reports each ready connection id to ready until wake is called.
func (p *poller) run(ready func(id uint32)) error {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("transport: epoll_wait: %w", err)
		}
		for i := range n {
			id := uint32(events[i].Pad)
			if id == wakeID {
				return nil
			}
			ready(id)
		}
	}
}

// wake stops run.
func (p *poller) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:]) // little-endian 1; EAGAIN means already woken
}

func (p *poller) close() {
	unix.Close(p.evfd)
	unix.Close(p.epfd)
}

// control runs f with the connection's fd. While f runs the fd cannot be
// closed (the runtime holds a reference), so its number cannot be reused.
func control(rc syscall.RawConn, f func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

const pollSupported = true
