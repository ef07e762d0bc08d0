package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// sysDisconnect is the system channel of cluster-wide disconnects. Every
// hub declares interest in it at New, so a publish on it reaches every
// node; its data is {"user":"<id>"}.
const sysDisconnect = ReservedPrefix + "sys:disconnect"

// PublishOption adjusts one Publish or Broadcast.
type PublishOption func(*publishOptions)

type publishOptions struct {
	except string
}

// Except leaves out one client (by Client.ID), on whichever node it is:
// Socket.IO's socket.broadcast, to tell everyone else what a client did.
func Except(clientID string) PublishOption {
	return func(o *publishOptions) { o.except = clientID }
}

// Broadcast publishes the same data to each of chs, cluster-wide, as one
// Publish per channel. Every channel and the data are checked first, so
// either all are published or none (an error says which channel failed).
// On channels with history it returns once enough nodes hold the publish
// to survive one node's death, or ErrNotStored (it was still delivered
// to whoever could be reached).
func (h *Hub) Broadcast(ctx context.Context, chs []string, data []byte, opts ...PublishOption) error {
	if err := h.serving(ctx); err != nil {
		return err
	}
	for _, ch := range chs {
		if err := checkServerChannel(ch); err != nil {
			return err
		}
	}
	if err := h.checkData(data); err != nil {
		return err
	}
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	var stored chan error
	waiting := 0
	for _, ch := range chs {
		if _, ok := h.limits(ch); !ok {
			h.publish(ch, data, o.except, nil)
			continue
		}
		if stored == nil {
			stored = make(chan error, len(chs))
		}
		waiting++
		h.publish(ch, data, o.except, func(err error) { stored <- err })
	}
	var errs error
	for range waiting {
		select {
		case err := <-stored:
			if err != nil && errs == nil {
				h.metrics.notStored.Add(1)
				errs = fmt.Errorf("%w: %w", ErrNotStored, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errs
}

func checkServerChannel(ch string) error {
	if reason := validChannel(ch); reason != "" {
		return fmt.Errorf("%w: %s: %s", ErrBadChannel, quoteForReason(ch), reason)
	}
	if isReserved(ch) {
		return fmt.Errorf("%w: %s", ErrReserved, quoteForReason(ch))
	}
	return nil
}

// Disconnect closes every connection of user on every node of the cluster
// with 4003 "disconnected". It returns once the local connections are
// closing and the request is handed to the relay; a connection that is
// being opened at that moment may escape it.
func (h *Hub) Disconnect(ctx context.Context, user string) error {
	if user == "" {
		return ErrNoUser
	}
	if err := h.serving(ctx); err != nil {
		return err
	}
	n := h.disconnectLocal(user)
	h.log.Info("disconnecting user", slog.String("user", user), slog.Int("local_connections", n))
	data := appendQuoted([]byte(`{"user":`), user)
	data = append(data, '}')
	h.relay.Publish(sysDisconnect, data, "", nil, nil)
	return nil
}

// deliverSystem handles a publish on a reserved channel that came from
// another node. Unknown system channels are ignored, so a newer node can
// add some.
func (h *Hub) deliverSystem(ch string, data []byte) {
	if ch != sysDisconnect {
		return
	}
	var msg struct {
		User string `json:"user"`
	}
	if err := json.Unmarshal(data, &msg); err != nil || msg.User == "" {
		h.log.Warn("ignored a malformed disconnect from a peer", slog.Any("err", err))
		return
	}
	n := h.disconnectLocal(msg.User)
	h.log.Debug("peer disconnected user", slog.String("user", msg.User), slog.Int("local_connections", n))
}
