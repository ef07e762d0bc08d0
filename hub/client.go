package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
)

// Client is one WebSocket connection of this hub, as hooks and Go code see
// it: Socket.IO's socket. Hooks receive it; keep it to act on the
// connection later. Its methods are safe from any goroutine, also after the
// connection closed (they then do nothing, or return ErrClosed).
type Client struct {
	id     string
	ident  atomic.Pointer[Identity] // nil: anonymous; a refresh replaces it
	remote string
	origin string
	s      *session
}

// ID is the connection's id, unique in the cluster, sent in hello.
func (c *Client) ID() string { return c.id }

// User is the Identity's user; "" for an anonymous connection.
func (c *Client) User() string {
	id := c.ident.Load()
	if id == nil {
		return ""
	}
	return id.User // the same for every identity of a connection (refresh keeps it)
}

// Identity is what the Authenticator decided (the zero Identity for an
// anonymous connection).
func (c *Client) Identity() Identity {
	id := c.ident.Load()
	if id == nil {
		return Identity{}
	}
	return *id
}

// RemoteAddr is the TCP peer's address of the upgrade request.
func (c *Client) RemoteAddr() string { return c.remote }

// Origin is the upgrade request's Origin header; "" from non-browsers.
func (c *Client) Origin() string { return c.origin }

// Channels lists the channels the connection is subscribed to.
func (c *Client) Channels() []string {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.subs))
	for i, sb := range s.subs {
		out[i] = sb.c.name
	}
	slices.Sort(out)
	return out
}

// Subscribe subscribes the connection to ch from the server, like
// Socket.IO's socket.join: the service decides, so the namespace rules and
// AuthorizeSubscribe are not consulted (the reserved "$" prefix and the
// subscription limit are). It runs OnSubscribe on this goroutine and
// returns once every peer confirmed, so that every later publish reaches
// the client; if one did not within the cluster's interest timeout, the
// client is subscribed and gets a gap. Subscribing again is a no-op.
// WithInfo gives its presence info on a presence channel.
//
// The client is not told: the msg frames simply start. The Go client
// (package client) and the JavaScript client deliver only the channels
// they subscribed to themselves and drop the others, so their application
// subscribes to the same channel too (the hub acks it, a no-op, if the
// rules allow it: the personal channel "user:#<user>" always does). Run it
// again after a reconnect from OnConnect, as a new connection is a new
// Client.
func (c *Client) Subscribe(ctx context.Context, ch string, opts ...SubscribeOption) error {
	if err := checkServerChannel(ch); err != nil {
		return err
	}
	h := c.s.hub
	if err := h.serving(ctx); err != nil {
		return err
	}
	info, err := c.s.subscribeInfo(ch, opts)
	if err != nil {
		return err
	}
	t, isNew, err := c.s.join(ch, false, info)
	if err != nil {
		return err
	}
	if isNew {
		h.events.subscribed(c, ch)
	}
	if t == 0 || h.relay.Confirmed(ch, t) {
		return nil
	}
	if err := h.relay.AwaitConfirmed(ctx, ch, t); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.lateConfirmation(c.s, ch)
		h.log.Warn("subscribe acked before every peer confirmed it; the client got a gap",
			slog.String("client", c.id), slog.String("channel", ch), slog.Any("err", err))
	}
	return nil
}

// Unsubscribe removes the connection from ch (no-op if it is not in it),
// running OnUnsubscribe on this goroutine.
func (c *Client) Unsubscribe(ch string) {
	if c.s.leave(ch) {
		c.s.hub.events.unsubscribed(c, ch)
	}
}

// Send delivers data, one valid JSON value, to this connection only, as a
// msg frame on channel ch: the connection gets it like any delivery on ch,
// subscribed or not. The Go and JavaScript clients hand it to the
// application only on a channel it subscribed to, and drop it otherwise.
func (c *Client) Send(ch string, data []byte) error {
	if err := checkServerChannel(ch); err != nil {
		return err
	}
	if err := c.s.hub.checkData(data); err != nil {
		return err
	}
	frame, _ := msgFrame(ch, data, "")
	if err := c.s.conn.Send(frame); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return nil
}

// Disconnect closes the connection with 4003 and reason (the client
// should not reconnect with the same credentials).
func (c *Client) Disconnect(reason string) {
	c.s.conn.Close(CloseDisconnected, reason)
}

// checkData applies the publish data rules: size, then JSON validity and
// UTF-8. json.Valid accepts invalid UTF-8 inside strings, but the frame
// that carries data to subscribers is a text frame, which a browser closes
// with 1007 if it is not UTF-8 (the transport refuses such frames from
// clients for the same reason).
func (h *Hub) checkData(data []byte) error {
	if limit := h.live().MaxDataSize; len(data) > limit {
		return fmt.Errorf("%w (%d bytes, the limit is %d)", ErrTooLarge, len(data), limit)
	}
	if !validJSONText(data) {
		return ErrBadData
	}
	if jsonDepth(data) > maxDataDepth {
		return errTooDeep
	}
	return nil
}
