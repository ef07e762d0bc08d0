package relay

import "context"

// Presence across the cluster (docs/presence.md). Each node is the only
// authority on its own clients' presence: it hands its entries to the
// cluster (PresenceRelay), which sends them to the peers that want the
// channel, and the cluster hands the other nodes' entries of the channels
// this node wants to the hub (PresenceReceiver), which keeps the view and
// turns its changes into join and leave events. A node that does not want
// a channel holds no view of it and asks the peers (PresenceFetch).

// PresenceEntry is one client connection present on one channel.
type PresenceEntry struct {
	Ch     string
	Client string // the connection's id, unique in the cluster
	User   string // who it is present as
	// Info is a JSON value of at most MaxPresenceInfo bytes, or nil. The
	// relay never modifies it and the receiver may keep it.
	Info []byte
}

// MaxPresenceInfo bounds an entry's Info, in bytes.
const MaxPresenceInfo = 1 << 10

// Owner names the node whose entries a PresenceReceiver call is about, as
// one stay of it in this node's membership: Seq is new whenever the node
// is taken back after it was dropped (declared dead, left, partitioned
// away), so a late call about a previous stay can never touch the entries
// of the current one. Seq 0 is never used: the hub keeps its own clients
// under it.
type Owner struct {
	Node string
	Seq  uint64
}

// PresenceRelay is the presence half of Relay. Calls for one client come
// in the order of its subscribes and unsubscribes; neither blocks.
type PresenceRelay interface {
	// PresenceAdd records a local client's entry and sends it to every
	// peer that wants its channel; PresenceRemove takes it back.
	PresenceAdd(e PresenceEntry)
	PresenceRemove(ch, client string)

	// PresenceView reports whether this node holds the view of ch: it
	// wants ch as a presence channel and a subscribe of it was confirmed
	// (every live peer's entries had arrived) or timed out. Then the hub
	// answers from its table, as its subscribers see it.
	PresenceView(ch string) bool
	// PresenceFetch asks every live peer for its own entries of ch and
	// returns them all, or an error naming the peers that could not be
	// asked or did not answer within the interest timeout or ctx.
	PresenceFetch(ctx context.Context, ch string) ([]PresenceEntry, error)
}

// PresenceChannel is one channel's whole set of entries of an owner.
type PresenceChannel struct {
	Ch      string
	Entries []PresenceEntry
	// Quiet: no subscriber of Ch has been told this node's view of it is
	// complete yet (no sub's ack), so the changes this makes are not
	// events for anyone: they are the starting point the acks promise.
	Quiet bool
}

// PresenceReceiver is the presence half of Receiver. For one Owner the
// calls come one at a time and in the owner's order; calls about
// different owners may run at once. None may block or call the Relay, and
// none keeps a slice of its arguments but Info. Calls about channels this
// node wants come only while it wants them: the cluster makes them under
// the lock that orders them with Subscribe and Unsubscribe.
type PresenceReceiver interface {
	// PresenceSync makes each of chans o's whole set of entries of its
	// channel; the entries of o.Node's earlier stays (lower Seq) on those
	// channels, whose drop may be on its way, go: the node is back, and
	// this is all it has there. With full, chans is everything o has on
	// the channels it knows this node wants, sent when o's link to this
	// node (re)opened: o's entries on any other channel go too.
	PresenceSync(o Owner, full bool, chans []PresenceChannel)
	// PresenceChange adds (present) or removes one entry of o. A removal
	// carries Ch, Client and User only. quiet is as in PresenceChannel.
	PresenceChange(o Owner, e PresenceEntry, present, quiet bool)
	// PresenceDrop removes every entry of o: it left, or was declared dead
	// and no call about this stay of it will follow.
	PresenceDrop(o Owner)
	// PresenceForget removes every other node's entries of ch: this node
	// no longer wants it (its last subscriber went), so they would go
	// stale. It has no subscriber of ch to tell.
	PresenceForget(ch string)
}
