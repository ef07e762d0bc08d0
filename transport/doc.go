// Package transport owns meshcast's WebSocket connections: the HTTP upgrade
// (gobwas/ws), reading and validating client frames, per-connection bounded
// write queues, keepalive pings and close codes. It knows nothing of
// channels, JSON or the cluster.
//
// # Reading
//
// On Linux a connection with a file descriptor (a plain TCP connection) is
// registered with one epoll instance (EPOLLIN|EPOLLRDHUP|EPOLLONESHOT). When
// it becomes readable a bounded pool of workers reads what is there without
// parking, feeds it to an incremental frame parser and re-arms the
// registration. Such a connection, while idle, holds no goroutine and no read
// buffer: the bytes of a partial frame, and the fragments of an unfinished
// message, are kept only while there are any.
//
// Every other connection gets a reader goroutine of its own, with a 4 KiB
// read buffer and the same parser, for as long as it is open: all connections
// under Config.UseGoroutines and on every non-Linux build, and connections
// that have no file descriptor, such as TLS connections (a *tls.Conn does
// not expose one).
//
// # Writing
//
// Conn.Send queues an already-encoded, shared frame (see NewTextFrame) and
// never blocks on the network. A connection whose queue becomes non-empty is
// put on a ready list served by a few shared writer goroutines, which copy
// what is queued into one buffer (up to 64 KiB) per non-blocking write. Only
// when the socket would block does the connection get a goroutine of its
// own, which writes with a deadline until the queue is empty and then exits.
// A connection without a file descriptor (TLS) cannot be written without
// blocking, so it gets that goroutine each time its queue becomes non-empty.
// A Send that would take the bytes queued and being written over
// Config.WriteQueueSize closes the connection with 1008 "slow consumer".
//
// Server.Burst is Send of one frame to many connections (a fan-out). A
// connection that is idle (nothing queued or being written) is claimed and
// written straight from the frame; the claimed ones are written in chunks
// by every shared writer at once, woken together, so a burst uses all the
// writers from its first write. Busy connections get the frame queued,
// coalescing as with Send, and so does every connection while the writers
// are still busy with earlier writes (under load a write should carry
// several frames); the same rules (order per connection, the queue bound,
// close frame last) hold on both paths.
//
// On Linux each shared writer sends through its own io_uring (package
// transport/uring): up to 16 connections, a burst's chunk or connections
// taken together from the ready list, go out with one io_uring_enter
// instead of a write(2) each, every send non-blocking. On a VM, where a
// system call's entry and exit cost as much as a small loopback send, that
// is about half the CPU per delivery. Where io_uring is refused (an old
// kernel, kernel.io_uring_disabled, a seccomp profile) or
// Config.NoIOURing is set, the writers use write(2), with the same
// behaviour.
//
// # Keepalive
//
// One sweep goroutine pings every connection each Config.PingInterval and
// closes with 1001 "ping timeout" those from which no frame has arrived for
// two intervals (so a dead client is cut after two to three intervals).
//
// # Closing
//
// A close the server starts (Conn.Close, a protocol error, a slow consumer,
// Shutdown) writes its close frame after what is queued, then shuts the
// write side (TCP FIN; over TLS a close_notify) and keeps the socket open,
// discarding what the client still sends, until the client closes its side
// or Config.CloseLinger passes. Closing at once would make the kernel answer
// the client's unread bytes with a reset, and a client OS may drop the close
// frame it had not read yet when one arrives (Windows does), so the client
// would see 1006 instead of the code. In epoll mode a lingering connection
// costs no goroutine either. A close the client started is echoed and the
// socket closed at once.
//
// # Concurrency contract
//
// For one connection the Handler's methods are never called concurrently and
// come in order: OnOpen, OnMessage..., then OnClose exactly once. OnOpen runs
// on the goroutine calling Server.Upgrade. OnMessage and OnClose run on a
// read worker or the connection's reader goroutine, or on the goroutine
// calling Upgrade, after OnOpen, for frames that arrived with the handshake
// and for a close that happened before reading started. OnClose is never
// called from inside Send or Close, so a handler may hold its own locks while
// calling those. Conn.Send and Conn.Close are safe from any goroutine,
// handler methods included.
//
// Server.Shutdown closes every open connection with 1001, waits until each
// one's OnClose has returned, its socket is closed (after the linger) and
// every goroutine of the package has exited.
// It must not be called from a Handler method: it would wait for an OnClose
// that cannot run until that method returns.
package transport
