package transport

import (
	"errors"
	"fmt"
)

// StatusCode is a WebSocket close code (RFC 6455 section 7.4).
type StatusCode uint16

// Close codes used by the transport. 1005 and 1006 never go on the wire: they
// describe a close frame without a code and a connection that ended without
// a close frame.
const (
	CloseNormal          StatusCode = 1000
	CloseGoingAway       StatusCode = 1001 // server shutdown, ping timeout
	CloseProtocolError   StatusCode = 1002
	CloseUnsupportedData StatusCode = 1003 // binary message
	CloseNoStatus        StatusCode = 1005 // peer's close frame had no code
	CloseAbnormal        StatusCode = 1006 // EOF or I/O error, no close frame
	CloseInvalidPayload  StatusCode = 1007 // text not UTF-8
	ClosePolicyViolation StatusCode = 1008 // also used for "slow consumer"
	CloseTooBig          StatusCode = 1009
	CloseInternalError   StatusCode = 1011
)

// Close reasons the transport itself uses; callers may compare against them.
const (
	ReasonSlowConsumer = "slow consumer"
	ReasonPingTimeout  = "ping timeout"
	ReasonGoingAway    = "going away"
)

var (
	// ErrClosed is returned by Send after the connection started closing,
	// and by Upgrade once Shutdown has begun.
	ErrClosed = errors.New("transport: connection closed")
	// ErrQueueFull is returned by the Send that overflowed the write queue;
	// the connection is being closed with 1008 "slow consumer".
	ErrQueueFull = errors.New("transport: write queue full")
	// ErrNotHijacker is returned by Upgrade when the http.ResponseWriter
	// cannot be hijacked: a middleware wrapped it without an Unwrap method
	// (see http.ResponseController) or a Hijack of its own, or the request
	// came over HTTP/2. It is the server's setup, not the client: every
	// upgrade through that handler fails with HTTP 500.
	ErrNotHijacker = errors.New("transport: the http.ResponseWriter cannot be hijacked (a middleware's wrapper needs Unwrap)")
)

// CloseError says why a connection closed. Remote is true when the close
// came from the reading side: the peer's close frame, EOF, a reset or any
// other failed read. It is false when this side closed it: Close, Shutdown,
// a protocol violation, a slow consumer, a ping timeout or a failed write.
type CloseError struct {
	Code   StatusCode
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return fmt.Sprintf("transport: %s close %d %q", side, e.Code, e.Reason)
}

// protoErr builds the error a parser check returns; it is sent to the peer.
func protoErr(code StatusCode, reason string) *CloseError {
	return &CloseError{Code: code, Reason: reason}
}
