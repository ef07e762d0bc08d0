// Package cluster joins meshcast nodes into a brokerless cluster and routes
// publishes between them by interest.
//
// It owns three things:
//   - membership: hashicorp/memberlist gossip (join with retry, leave, node
//     metadata carrying the peer-link address and protocol version, gossip
//     encryption keyed from the cluster secret);
//   - peer links: one TCP connection per ordered pair of nodes. Node A dials B
//     and sends on that connection its publishes and its interest messages
//     (add/remove/snapshot, each with a per-node sequence number); B answers
//     only with interest acks. A handshake proves both ends hold the cluster
//     secret before any frame is read; with Config.TLS the link runs inside
//     mutual TLS first (MutualTLS builds such a config), for networks the
//     operator does not trust;
//   - the interest table: which peer wants which channel, learned from the
//     links peers dialled to us and forgotten when such a link closes.
//
// It knows nothing of WebSockets or sessions: the hub hands it a Receiver and
// calls Publish, Interest and AwaitInterest.
//
// # Guarantees it provides to the hub
//
// After AwaitInterest(ch) returns nil, every peer that memberlist reported
// alive has processed this node's interest in ch and has its own link towards
// this node up, so every later publish to ch on such a peer is sent to this
// node. Peers that join after AwaitInterest returned learn the interest
// from the snapshot their link gets when it opens. Publishes from one node
// reach another in publish order (one FIFO link
// per ordered pair, delivered in link order). A publish received from a peer
// is only delivered locally, never forwarded, so there are no loops.
//
// # Concurrency
//
// Publish, Interest, AwaitInterest, Stats and Shutdown may be called from any
// goroutine. Publish and Interest never block on the network: frames go into
// a bounded per-link queue drained by one writer goroutine per link. A full
// queue drops publishes (counted in Stats) and resets the link for interest
// messages, which must never be lost silently; the reconnect resynchronises
// with a snapshot. Receiver.Deliver is called from a link's reader goroutine,
// one call at a time per link, in link order; its byte slice is only valid
// during the call.
//
// Every goroutine the package starts is owned by the Cluster and waited for
// in Shutdown.
//
// Lock order, where locks nest: localInterest.mu, then Cluster.peersMu, then
// peer.mu. interestTable.mu is never held while taking another lock.
package cluster
