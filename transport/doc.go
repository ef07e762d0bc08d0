// Package transport owns meshcast's WebSocket connections: the HTTP upgrade
// (gobwas/ws), reading and validating client frames, per-connection bounded
// write queues, keepalive pings and close codes. It knows nothing of
// channels, JSON or the cluster.
//
// # Reading
//
// On Linux a connection is registered with one epoll instance
// (EPOLLIN|EPOLLRDHUP|EPOLLONESHOT). When it becomes readable a bounded pool
// of workers reads what is there without parking, feeds it to an incremental
// frame parser and re-arms the registration. An idle connection holds no
// goroutine and no buffer; a partial frame is kept in a buffer that exists
// only while it is partial. Config.UseGoroutines (and every non-Linux build)
// selects a goroutine-per-connection reader with the same parser instead.
//
// # Writing
//
// Conn.Send queues an already-encoded, shared frame (see NewTextFrame) and
// never blocks. A connection whose queue becomes non-empty is put on a ready
// list served by a few shared writer goroutines that write everything queued
// in one non-blocking write. Only when the socket would block does the
// connection get a goroutine of its own, which writes with a deadline until
// the queue is empty and then exits. A queue over Config.WriteQueueSize closes
// the connection with 1008 "slow consumer".
//
// # Keepalive
//
// One sweep goroutine pings every connection each Config.PingInterval and
// closes with 1001 "ping timeout" those from which no frame has arrived for
// two intervals (so a dead client is cut after two to three intervals).
//
// # Concurrency contract
//
// For one connection the Handler's methods are never called concurrently and
// come in order: OnOpen (from the goroutine calling Server.Upgrade),
// OnMessage... (from a read worker or the connection's reader goroutine),
// then OnClose exactly once (from a read worker or the reader goroutine,
// never from inside Send or Close, so a handler may hold its own locks while
// calling those). Conn.Send and Conn.Close are safe from any goroutine.
// Server.Shutdown closes every connection with 1001, waits until each one's
// OnClose has returned and every goroutine of the package has exited.
package transport
