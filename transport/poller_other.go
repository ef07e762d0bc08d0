//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// poller does not exist outside Linux: every connection gets a reader goroutine.
type poller struct{}

func newPoller() (*poller, error)                    { return nil, errors.New("transport: epoll needs linux") }
func (p *poller) arm(int, uint32, bool) error        { return errors.ErrUnsupported }
func (p *poller) del(int) error                      { return errors.ErrUnsupported }
func (p *poller) run(func(uint32)) error             { return nil }
func (p *poller) wake()                              {}
func (p *poller) close()                             {}
func control(syscall.RawConn, func(int) error) error { return errors.ErrUnsupported }

const pollSupported = false
