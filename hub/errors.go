package hub

import "errors"

// Error is an error with the code a client sees. A hook returns one to
// choose the code of a refused sub or pub (err frame; default 403); an
// Authenticator returns one to choose the HTTP status of a refused upgrade
// (default 403). Reason goes to the client as written.
type Error struct {
	Code   int
	Reason string
	Err    error // what caused it, for errors.Is; not shown to the client
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// codeOf is the code of err as a client sees it: an *Error's, else def.
func codeOf(err error, def int) int {
	var e *Error
	if errors.As(err, &e) && e.Code != 0 {
		return e.Code
	}
	return def
}

// Errors of Publish, Broadcast, Subscribe, Send and Disconnect.
var (
	ErrBadChannel = errors.New("hub: invalid channel name")
	ErrBadData    = errors.New("hub: data is not a single valid JSON value in UTF-8")
	ErrTooLarge   = errors.New("hub: data is larger than MaxDataSize")
	ErrClosed     = errors.New("hub: closed")
	// ErrUnavailable: this node is not a member in good standing of its
	// cluster (joining, isolated, re-verifying after a stall), so it
	// refuses what it could not deliver cluster-wide; the error says why.
	ErrUnavailable = errors.New("hub: cluster unavailable")
	// ErrNotStored: a publish on a channel with history was delivered
	// here but not held by enough nodes to survive one node's death (too
	// few peers reachable); it may not be recoverable. Clients get err 503.
	ErrNotStored = errors.New("hub: publish not stored on enough nodes")
	// ErrNoHistory: the channel has no history (Namespace.History).
	ErrNoHistory = errors.New("hub: channel has no history")
	// ErrBadPosition: a position that is not one of this channel's.
	ErrBadPosition = errors.New("hub: invalid position")
	// ErrReserved: channels starting with ReservedPrefix are the hub's own.
	ErrReserved = errors.New("hub: channels starting with $ are reserved")
	// ErrNoUser: Disconnect needs a user.
	ErrNoUser = errors.New("hub: user is empty")
	// ErrInvalidConfig wraps every configuration error of New.
	ErrInvalidConfig = errors.New("hub: invalid config")
)
