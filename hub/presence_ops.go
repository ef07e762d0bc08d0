package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// Client operations of presence (docs/protocol.md).
const (
	opPresence      = "presence"
	opPresenceStats = "presence_stats"
)

// MaxPresenceInfo bounds the info of a presence entry, in bytes: what a
// sub's "info" or a token's "info" claim may hold.
const MaxPresenceInfo = relay.MaxPresenceInfo

// Member is one user present on a channel, cluster-wide.
type Member struct {
	User string `json:"user"`
	// Clients is how many of the user's connections, on every node, are
	// subscribed to the channel.
	Clients int `json:"clients"`
	// Info is the user's info (a JSON value), if it gave one: that of its
	// connection with the lowest client id.
	Info json.RawMessage `json:"info,omitempty"`
}

// PresenceStats counts the users and connections present on a channel,
// cluster-wide.
type PresenceStats struct {
	Users   int `json:"users"`
	Clients int `json:"clients"`
}

var (
	// ErrNoPresence: the channel's namespace does not have presence on.
	ErrNoPresence = errors.New("hub: presence is not enabled for this channel")
	// ErrInfoTooLarge: presence info over MaxPresenceInfo bytes.
	ErrInfoTooLarge = fmt.Errorf("hub: presence info is larger than %d bytes", MaxPresenceInfo)
)

// Presence lists the users present on ch on every node, sorted by user.
// A node with a subscriber of ch holds the whole view and answers from it,
// with no round trip. Any other node asks every peer for its members of
// ch (one round trip; ErrUnavailable, naming the node, if one does not
// answer within the cluster's interest timeout). A node that is not in
// good standing refuses (ErrUnavailable), since its view may be missing a
// side of a partition.
func (h *Hub) Presence(ctx context.Context, ch string) ([]Member, error) {
	if err := h.checkPresence(ctx, ch); err != nil {
		return nil, err
	}
	t, err := h.presenceOf(ctx, ch)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	members, _ := t.membersLocked(ch, "", -1)
	return members, nil
}

// PresenceStats counts the users and connections present on ch on every
// node: in constant time where ch is subscribed, else as Presence asks.
func (h *Hub) PresenceStats(ctx context.Context, ch string) (PresenceStats, error) {
	if err := h.checkPresence(ctx, ch); err != nil {
		return PresenceStats{}, err
	}
	t, err := h.presenceOf(ctx, ch)
	if err != nil {
		return PresenceStats{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.statsLocked(ch), nil
}

// presenceOf is the table to read ch from: this node's, when it holds the
// whole view of ch, else one built from this node's own entries and every
// peer's (remotePresence).
func (h *Hub) presenceOf(ctx context.Context, ch string) (*presenceTable, error) {
	if h.relay.PresenceView(ch) {
		return &h.pres, nil
	}
	return h.remotePresence(ctx, ch)
}

// remotePresence asks every peer for its entries of ch, which this node
// does not hold, and builds a table of them and this node's own.
func (h *Hub) remotePresence(ctx context.Context, ch string) (*presenceTable, error) {
	entries, err := h.relay.PresenceFetch(ctx, ch)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: this node has no subscriber of %s, and asking every node for its members failed: %s",
			ErrUnavailable, quoteForReason(ch), strings.TrimPrefix(err.Error(), "cluster: "))
	}
	t := newPresenceTable()
	h.pres.mu.Lock()
	if pc := h.pres.chans[ch]; pc != nil {
		for user, pu := range pc.users {
			for _, c := range pu.conns {
				if c.owner == 0 {
					t.addLocked(0, relay.PresenceEntry{Ch: ch, Client: c.client, User: user, Info: c.info}, nil)
				}
			}
		}
	}
	h.pres.mu.Unlock()
	for _, e := range entries {
		t.addLocked(1, h.remoteEntry(e), nil) // client ids are unique in the cluster: one owner will do
	}
	return &t, nil
}

func (h *Hub) checkPresence(ctx context.Context, ch string) error {
	if err := checkServerChannel(ch); err != nil {
		return err
	}
	if err := h.serving(ctx); err != nil {
		return err
	}
	if !h.presenceOn(ch) {
		return fmt.Errorf("%w: %s", ErrNoPresence, quoteForReason(ch))
	}
	return nil
}

// membersLocked lists the members of ch whose user sorts after after, in
// order, until their size passes budget (-1: no limit); more says some
// were left out. Caller holds mu.
func (t *presenceTable) membersLocked(ch, after string, budget int) (members []Member, more bool) {
	pc := t.chans[ch]
	if pc == nil {
		return []Member{}, false
	}
	users := make([]string, 0, len(pc.users))
	for u := range pc.users {
		if after == "" || u > after {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	members = make([]Member, 0, len(users))
	size := 0
	for _, u := range users {
		pu := pc.users[u]
		m := Member{User: u, Clients: len(pu.conns), Info: pu.info()}
		if size += memberSize(m); budget >= 0 && size > budget && len(members) > 0 {
			return members, true
		}
		members = append(members, m)
	}
	return members, false
}

func (t *presenceTable) statsLocked(ch string) PresenceStats {
	pc := t.chans[ch]
	if pc == nil {
		return PresenceStats{}
	}
	return PresenceStats{Users: len(pc.users), Clients: pc.clients}
}

// presenceQuery answers presence and presence_stats. The answer is queued
// under the table's lock, so it is ordered with the join and leave events
// on this connection: it reflects every event sent before it.
func (s *session) presenceQuery(req *request) {
	if !s.checkChannel(req) || !s.inStanding(req) {
		return
	}
	if !s.subscribed(req.ch) {
		if err := s.authorizeSubscribe(req.ch); err != nil {
			s.sendErr(req, codeOf(err, CodeForbidden), err.Error())
			return
		}
	}
	h := s.hub
	if !h.presenceOn(req.ch) {
		s.sendErr(req, CodeBadRequest, "presence is not enabled for this channel")
		return
	}
	if s.subscribed(req.ch) || h.relay.PresenceView(req.ch) {
		s.presenceReply(req, &h.pres)
		return
	}
	// This node holds no view of the channel: ask the peers, off the
	// transport's read worker.
	if s.tasks.Add(1) > maxTasks {
		s.tasks.Add(-1)
		s.sendErr(req, CodeRateLimited, "too many recoveries, history and presence reads at once")
		return
	}
	r := *req
	r.data, r.info = nil, nil // they point into the transport's frame
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer s.tasks.Add(-1)
		t, err := h.remotePresence(h.ctx, r.ch)
		switch {
		case h.ctx.Err() != nil:
		case err != nil:
			s.sendErr(&r, codeOf(err, CodeUnavailable), strings.TrimPrefix(err.Error(), "hub: "))
		default:
			s.presenceReply(&r, t)
		}
	}()
}

// presenceReply answers req from t, under its lock: from the hub's own
// table, the answer is ordered with the join and leave events on this
// connection.
func (s *session) presenceReply(req *request, t *presenceTable) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if req.op == opPresenceStats {
		s.send(presenceStatsFrame(req, t.statsLocked(req.ch)))
		return
	}
	members, more := t.membersLocked(req.ch, req.after, s.hub.presenceReplyBudget())
	s.send(presenceReplyFrame(req, members, more))
}

// presenceReplyBudget bounds one presence answer to half a connection's
// write queue, so a big channel never cuts its client off as a slow
// consumer: the rest comes on request ("more", then "after").
func (h *Hub) presenceReplyBudget() int {
	q := h.cfg.Transport.WriteQueueSize
	if q <= 0 {
		q = transport.DefaultConfig().WriteQueueSize
	}
	return q / 2
}

// presenceInfo is the info a subscribe of ch brings: the identity's (a
// token's "info" claim), else the sub's own; nil where presence is off.
func (s *session) presenceInfo(ch string, given []byte) ([]byte, error) {
	if !s.hub.presenceOn(ch) {
		return nil, nil
	}
	info := given
	if id := s.client.ident.Load(); id != nil && len(id.Info) > 0 {
		info = id.Info
	}
	if len(info) > MaxPresenceInfo {
		return nil, ErrInfoTooLarge
	}
	if !utf8.Valid(info) { // an Authenticator's Identity.Info; a client's sub is UTF-8 already
		return nil, fmt.Errorf("%w: presence info is not in UTF-8", ErrBadData)
	}
	if info != nil && string(bytes.TrimSpace(info)) == "null" {
		return nil, nil
	}
	// A request's slices point into the transport's frame, which is
	// reused after OnMessage.
	return bytes.Clone(info), nil
}

// PresenceCounts is the presence part of Stats.
type PresenceCounts struct {
	Channels int `json:"channels"` // channels with someone present, as Entries counts them
	// Entries counts connections present on channels, cluster-wide as this
	// node knows them: every node's on the channels it has subscribers of,
	// its own on the others (with OnUserOnline, each connection with a
	// user once more); Local those of this node.
	Entries int    `json:"entries"`
	Local   int    `json:"local"`
	Peers   int    `json:"peers"`  // peers whose entries this node holds
	Events  uint64 `json:"events"` // join and leave frames sent to subscribers
}

// PresenceCounts returns the presence figures alone (Stats has them too).
func (h *Hub) PresenceCounts() PresenceCounts {
	t := &h.pres
	t.mu.Lock()
	defer t.mu.Unlock()
	return PresenceCounts{Channels: len(t.chans), Entries: t.entries, Local: t.local, Peers: len(t.owners),
		Events: h.metrics.presenceEvents.Load()}
}

// WithInfo is the client's presence info on the channel, for
// Client.Subscribe (a JSON value of at most MaxPresenceInfo bytes), as a
// sub's "info" gives it; an Identity's Info wins over it. Hub.Subscribe's
// in-process subscriptions are not present anywhere and ignore it.
func WithInfo(info json.RawMessage) SubscribeOption {
	return func(o *subscribeOptions) { o.info = info }
}

// errSinceServerSide refuses Since in Client.Subscribe: a server-side
// subscribe makes the client live at once; it recovers nothing.
var errSinceServerSide = errors.New("hub: Since is an option of Hub.Subscribe, not of Client.Subscribe")

// subscribeInfo is the presence info of a server-side subscribe.
func (s *session) subscribeInfo(ch string, opts []SubscribeOption) ([]byte, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.hasSince {
		return nil, errSinceServerSide
	}
	if o.info != nil && !validJSONText(o.info) {
		return nil, fmt.Errorf("%w: presence info is not a JSON value in UTF-8", ErrBadData)
	}
	return s.presenceInfo(ch, o.info)
}
