// Package cluster joins meshcast nodes into a brokerless cluster and routes
// publishes between them by interest.
//
// It owns three things:
//   - membership: hashicorp/memberlist gossip (join with retry, leave, node
//     metadata carrying the peer-link address and protocol version, gossip
//     encryption keyed from the cluster secret), over a transport of its
//     own (gossipnet.go) that bounds and checks incoming streams and
//     packets before memberlist sees them (gossipguard.go), and counts
//     the junk instead of logging it (junk.go);
//   - peer links: one TCP connection per ordered pair of nodes. Node A dials B
//     and sends on that connection its publishes and its interest messages
//     (add/remove/snapshot, each with a per-node sequence number); B answers
//     only with interest acks. A handshake proves both ends hold the cluster
//     secret before any frame is read; with Config.TLS the link runs inside
//     mutual TLS first (MutualTLS builds such a config), for networks the
//     operator does not trust;
//   - the interest table: which peer wants which channel, learned from the
//     links peers dialled to us, kept across a reset of such a link until
//     the peer's next snapshot replaces it, forgotten when the peer is gone.
//
// It knows nothing of WebSockets or sessions. A hub uses it through
// internal/relay: hub.New(hub.Config{Cluster: c}) calls Attach, which
// starts the cluster with the hub as its receiver; the hub then publishes,
// counts local subscribers per channel (Subscribe/Unsubscribe), waits for
// peers to confirm a subscribe, and asks for the node's standing.
//
// # Self-healing
//
// memberlist's view (alive, dead, left) drives everything. A member
// reported alive (again, restarted, or new) is dialled at once; its
// interest survives a reset of its link until its next snapshot replaces
// it. A node keeps retrying the members it saw fail and the seeds that are
// not members (reconnect.go), so a partition heals without an operator.
// Standing (standing.go) says whether this node should serve: not while
// joining, isolated on a minority side, or re-verifying after its process
// was frozen. Incidents (incident.go) decide when subscribers must be told
// that publishes may be missing (Receiver.Gap).
//
// # Guarantees it provides to the hub
//
// After a subscribe is confirmed (relay.Relay.AwaitConfirmed), every peer
// that memberlist reported alive has processed this node's interest and
// has its own link towards this node up, so every later publish on such a
// peer is sent to this node, or this node reports a gap on the channel.
// Peers that join later learn the interest from the snapshot their link
// gets when it opens. Publishes from one node reach another in publish
// order (one FIFO link per ordered pair, delivered in link order). A
// publish received from a peer is only delivered locally, never forwarded,
// so there are no loops.
//
// # Concurrency
//
// Every exported method may be called from any goroutine. Publishing and
// interest changes never block on the network: frames go into a bounded
// per-link queue drained by one writer goroutine per link. A full queue
// drops publishes (counted, and named in a gap frame to the peer) and
// resets the link for interest messages, which must never be lost
// silently; the reconnect resynchronises with a snapshot.
// Receiver.Deliver is called from a link's reader goroutine, one call at a
// time per link, in link order; its byte slice is only valid during the
// call. Receiver.Gap is called from link readers and the maintenance loop,
// never with a cluster lock held.
//
// Config.Observer, if set, is called from a link's ack reader with the
// round trip of an interest message; one message per link is timed at a
// time, so publishes never read the clock for it.
//
// Every goroutine the package starts is owned by the Cluster and waited for
// in Shutdown; memberlist's own probe in flight is not (see Cluster.Shutdown).
//
// Presence (presence.go): this node's own entries are sent to every peer
// on the outbound links, a snapshot right after the interest snapshot,
// then each change; a peer's entries go to the hub under its relay.Owner
// and are dropped at its bye, or 500 ms after it is gone.
//
// Lock order, where locks nest: localInterest.mu (which also guards this
// node's presence entries) before Cluster.mu and before a frameQueue's mu; Cluster.mu before peer.mu and standing.mu.
// interestTable.mu, peer.mu, a frameQueue's mu, gapQueue.mu, a
// connGate's mu and an outConn's rttProbe.mu are never held while taking
// another lock.
package cluster
