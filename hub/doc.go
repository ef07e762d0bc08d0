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
// Concurrency: the transport calls a session's handlers one at a time.
// Channel membership changes under the registry's write lock, which also
// orders the Relay's Interest calls; a fan-out only takes the read lock
// long enough to fetch the current subscriber slice, and sends with no
// lock held. Publish, Deliver, Stats and Shutdown are safe from any
// goroutine.
package hub
