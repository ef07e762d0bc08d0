// Package hub keeps a node's client sessions and channels and speaks the
// meshcast client protocol v1 (docs/protocol.md) over the connections the
// transport package hands it.
//
// A Hub is an http.Handler: mount it on any mux, then call Publish from Go
// code or let clients publish. A publish is encoded once, WebSocket header
// included, and the same bytes are queued to every local subscriber; the
// Relay, if any, forwards it to other nodes, and Deliver takes in what
// other nodes forward.
//
// Security (Config.Security): connection tokens (JWT) are checked before
// the upgrade, channel permissions by namespace on each sub and pub, and
// limits on connections and publish rate; the hooks override the built-in
// decisions. NewAPI serves the server HTTP API (publish, broadcast,
// disconnect); Broadcast and Disconnect are the same operations in Go. A
// cluster-wide disconnect travels on the reserved channel "$sys:disconnect",
// which every hub wants from New on.
//
// Concurrency: the transport calls a session's handlers one at a time.
// Channel membership changes under the registry's write lock, which also
// orders the Relay's Interest calls; a fan-out only takes the read lock
// long enough to fetch the current subscriber slice, and sends with no
// lock held. Publish, Broadcast, Disconnect, Deliver, Stats and Shutdown are
// safe from any goroutine. With token auth one goroutine sweeps token
// expiries each second; it stops at Shutdown.
package hub
