package relay

// Presence across the cluster (docs/presence.md). Each node is the only
// authority on its own clients' presence: it hands its entries to the
// cluster (PresenceRelay), which replicates them to every peer, and the
// cluster hands the other nodes' entries to the hub (PresenceReceiver),
// which keeps the cluster-wide view and turns its changes into join and
// leave events.

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
	// peer; PresenceRemove takes it back.
	PresenceAdd(e PresenceEntry)
	PresenceRemove(ch, client string)
}

// PresenceReceiver is the presence half of Receiver. For one Owner the
// calls come one at a time and in the owner's order; calls about
// different owners may run at once. None may block, and none keeps a
// slice of its arguments but Info.
type PresenceReceiver interface {
	// PresenceSync replaces every entry of o with entries: o's whole set,
	// sent when its link to this node (re)opened. It also supersedes the
	// entries of o.Node's earlier stays (lower Seq) still held, whose drop
	// may be on its way: the node is back, and this is all it has.
	PresenceSync(o Owner, entries []PresenceEntry)
	// PresenceChange adds (present) or removes one entry of o. A removal
	// carries Ch, Client and User only.
	PresenceChange(o Owner, e PresenceEntry, present bool)
	// PresenceDrop removes every entry of o: it left, or was declared dead
	// and no call about this stay of it will follow.
	PresenceDrop(o Owner)
}
