// Package hub keeps a node's client sessions and channels and speaks the
// meshcast client protocol v1 (docs/protocol.md) over the connections the
// transport package hands it. It is what a Go service embeds.
//
// A Hub is an http.Handler: mount it on any mux, handle its events
// (Config.OnConnect and the others), and call Publish from anywhere. A
// publish is encoded once, WebSocket header included, and the same bytes
// are queued to every local subscriber; with Config.Cluster the cluster
// forwards it to the other nodes that want the channel and hands back what
// they publish. New starts the cluster, Ready says when the node is a
// member in good standing, Shutdown closes the clients and then leaves
// the cluster.
//
// Who connects is decided before the upgrade by Config.Authenticator (the
// built-in TokenVerifier checks JWTs); channel permissions by namespace
// (Config.Security) on each sub and pub, unless the Authorize hooks
// replace them; limits on connections and publish rate. NewAPI serves the
// server HTTP API (publish, broadcast, disconnect), the same operations
// as Publish, Broadcast and Disconnect in Go. A cluster-wide disconnect
// travels on the reserved channel "$sys:disconnect", which every hub wants
// from New on.
//
// Presence (presence*.go, docs/presence.md): on channels whose namespace
// has it, the hub keeps who is subscribed on every node, its own clients'
// entries and those the cluster replicated from each peer (relay.Owner),
// answers presence and presence_stats from that view, and turns its
// changes into join and leave events per user. With OnUserOnline or
// OnUserOffline, every connection with a user is present on the reserved
// channel "$sys:online" too (online.go), and one goroutine reports users
// coming and going.
//
// # Concurrency
//
// Every exported method of Hub, Client and Subscription is safe from any
// goroutine. The transport calls a session's handlers one at a time; a
// Client's methods may come from other goroutines too, so a session guards
// its subscriptions with its own lock. A fan-out takes the registry's read
// lock only to fetch the current subscriber slices and sends with no lock
// held. Hooks run with no hub lock held.
//
// Goroutines: one per connection that has subscribes waiting for the
// cluster's confirmation (await.go; it acks them in order and exits when
// none is left), one per recovery, history read or token refresh while it
// runs, one per in-process Subscription, one running the online
// hooks when they are set, and one sweeping
// expired identities each second (even without an Authenticator, since
// UpdateSecurity may add one); Shutdown stops and waits for all of them.
//
// # Changing settings while running
//
// UpdateSecurity swaps the Live settings (Authenticator, namespaces,
// limits, origins) with one atomic store; request paths read them with
// one atomic load, so a request sees the old or the new settings whole.
// Config.Observer, when set, gets the timings behind the histograms of
// package metrics; unset, the hub reads no clock for it.
//
// # Lock order
//
// Within the hub: session.mu, then presenceTable.mu, then registry.mu
// (join and leave events are queued to subscribers under the table's
// lock, so they keep the table's order); onlineHooks.mu after
// presenceTable.mu; hubSecurity.mu, a session's subWaits.mu and a
// Subscription's mu are never held while taking another lock. Across
// packages: the hub calls the cluster (internal/relay) under session.mu,
// never under registry.mu, and the cluster never calls the hub with one of
// its own locks held, so no cycle can form. The cluster's own order is in
// its package doc; the transport's Send and Close take only a connection's
// write-queue lock.
package hub
