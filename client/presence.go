package client

import (
	"context"
	"encoding/json"
)

// Presence (docs/protocol.md, Presence): who is on a channel whose
// namespace has presence=on, cluster-wide.

// Member is one user present on a channel.
type Member struct {
	User string `json:"user"`
	// Clients is how many of the user's connections, on every node, are
	// subscribed to the channel.
	Clients int             `json:"clients"`
	Info    json.RawMessage `json:"info,omitempty"`
}

// PresenceStats counts the users and connections present on a channel.
type PresenceStats struct {
	Users   int `json:"users"`
	Clients int `json:"clients"`
}

// presenceFields are the fields of the answers to presence and
// presence_stats, and of join events.
type presenceFields struct {
	Members []Member        `json:"members"`
	More    bool            `json:"more"`
	Users   int             `json:"users"`
	Clients int             `json:"clients"`
	Info    json.RawMessage `json:"info"`
}

// WithInfo is this client's presence info on the channel, a JSON value of
// at most 1 KiB, sent with every sub (also after a reconnect). A token's
// info claim wins over it. Info that is not one JSON value in valid UTF-8
// makes Subscribe return ErrBadData.
func WithInfo(info json.RawMessage) SubscribeOption {
	return func(s *Subscription) { s.info = info }
}

// Presence lists the users present on ch on every node, sorted by user;
// a big channel comes in pages, asked for in turn. It needs the subscribe
// permission of ch (else an *Error 403); a namespace without presence is
// an *Error 400. Like History, it is sent again after a lost connection.
func (c *Client) Presence(ctx context.Context, ch string) ([]Member, error) {
	if err := checkChannel(ch); err != nil {
		return nil, err
	}
	var out []Member
	after := ""
	for {
		f, err := c.roundTrip(ctx, request{op: "presence", ch: ch, after: after})
		if err != nil {
			return nil, err
		}
		out = append(out, f.Members...)
		if !f.More || len(out) == 0 {
			if out == nil {
				out = []Member{}
			}
			return out, nil
		}
		after = out[len(out)-1].User
	}
}

// PresenceStats counts the users and connections present on ch.
func (c *Client) PresenceStats(ctx context.Context, ch string) (PresenceStats, error) {
	if err := checkChannel(ch); err != nil {
		return PresenceStats{}, err
	}
	f, err := c.roundTrip(ctx, request{op: "presence_stats", ch: ch})
	if err != nil {
		return PresenceStats{}, err
	}
	return PresenceStats{Users: f.Users, Clients: f.Clients}, nil
}

// isRead reports whether op only reads, so sending it again after a lost
// connection is safe.
func isRead(op string) bool {
	return op == "history" || op == "presence" || op == "presence_stats"
}
