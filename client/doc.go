// Package client is the Go client of meshcast: a connection that
// reconnects, resubscribes and recovers, speaking only the documented
// protocol (docs/protocol.md).
//
//	c, err := client.Dial(ctx, "ws://localhost:8080/ws")
//	sub, err := c.Subscribe(ctx, "chat:lobby")
//	go func() {
//		for m := range sub.C {
//			if m.Gap { /* messages may have been missed here */ }
//			fmt.Println(string(m.Data))
//		}
//	}()
//	err = c.Publish(ctx, "chat:lobby", []byte(`{"text":"hi"}`))
//
// # Connection
//
// Connect dials the first of Config.URLs and returns once the server's
// hello has arrived. After that one goroutine keeps the client connected:
// when the connection ends it waits a random time in [0, cap) (full jitter;
// the cap starts at MinReconnectDelay and doubles to MaxReconnectDelay),
// dials the next URL, sends every subscription again, then what waited for
// the connection. The cap starts again from MinReconnectDelay only after
// a connection that lasted 10 s: a node that closes connections as soon
// as they open is not hammered. Close codes decide: 4003 (disconnected
// by the server) stops the client, as does 4001 (token expired) without
// GetToken; with GetToken a fresh token is fetched before every reconnect. An HTTP 503
// on the upgrade (a node not ready) honours Retry-After when there is only
// one URL to try.
//
// # Tokens
//
// Config.Token is sent on the first connection; with Config.GetToken a
// fresh token is fetched before every connection attempt instead. When
// the node's hello says when the connection's identity expires (a token
// with exp), a client with GetToken refreshes it over the live
// connection, with no reconnect, no gap and no presence leave: a tenth
// of the time left before the expiry (at least 5 s, at most 60 s before;
// at once when less is left) it sends GetToken's token in a refresh
// request, and the node's answer says when the new one expires, which
// schedules the next refresh. A refresh that fails (GetToken's error, or
// the node's *Error) is an EventError wrapping ErrRefresh and is tried
// again halfway to the expiry, not sooner than 3 s after, while the old
// token is still valid; a 400 (a node with nothing to refresh) is not.
// If the expiry passes anyway, the node closes the connection with 4001
// and the client reconnects with a token from GetToken. Refreshes stop
// with the connection they belong to: each connection schedules its own.
// The client counts the expiry from the node's ttl (the seconds left), so
// its own clock's error does not move the refresh; from a node that says
// only expires (Unix seconds by its clock), a client clock far off from it
// refreshes early or late.
//
// # Delivery
//
// Each Subscription has its own goroutine that hands messages to its
// channel C (or to a callback) from a bounded queue (Config.Buffer). A
// subscriber that falls further behind loses messages, and then receives a
// Message with Gap set before the next one: never a silent hole. A gap
// is also delivered when the server sends one, and after a resubscribe
// that did not recover everything. On channels with history the client
// resubscribes with since = the position of the last message received, so
// a reconnect within the history window loses nothing and adds no
// duplicates.
//
// # Requests
//
// Publish and History block until the answer, the context ends, or
// Config.RequestTimeout passes, waiting for a connection if there is none.
// A publish is never retried by the client: an *Error (503 when the node
// is not a member in good standing) means it was not published;
// ErrConnectionLost or a context error after it was sent means it may or
// may not have been. History, Presence and PresenceStats, reads, are sent
// again after a reconnect.
//
// # Presence
//
// On channels whose namespace has presence, WithInfo gives this client's
// info with its sub, Presence and PresenceStats say who is there on every
// node, and with join_leave a subscription's messages include Join and
// Leave, one per user, in order with its deliveries.
//
// # Concurrency
//
// Every method is safe for concurrent use. Callbacks (WithCallback,
// Config.OnEvent) run on the client's goroutines, each subscription's and
// OnEvent's on their own: they may call Publish, Subscribe and
// Unsubscribe, but not Close, and they should return quickly (a
// subscription's queue, and OnEvent's, fill meanwhile). Close stops every goroutine the client started and waits for
// them.
package client
