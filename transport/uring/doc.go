// Package uring is the small part of Linux io_uring that meshcast needs:
// many socket sends or receives handed to the kernel in one system call,
// each done at once if it can be and failed with EAGAIN if it cannot
// (never parked in the kernel), results read back in the same call.
//
// Why: on a virtual machine a system call's entry and exit can cost more
// than the work of a small loopback send or receive. A fan-out of one
// 100-byte frame to 1,000 sockets is 1,000 writes, and one batch of 16
// through a ring costs about half of 16 write(2) calls (see BENCHMARKS.md,
// "Burst latency (issue 15)").
//
// A Ring belongs to one goroutine at a time. The ring keeps the buffers
// given to Send and Recv referenced until Submit returns (they must not
// change meanwhile); Submit waits for every queued operation, so nothing
// is left in flight between calls. A Submit that fails leaves the ring
// broken (ErrBroken from then on): close it and go on without.
//
// io_uring may be missing (a kernel before 5.6, which lacks send and recv;
// a platform other than Linux) or refused (kernel.io_uring_disabled, a
// container's seccomp profile): New then returns an error and callers go
// on with plain system calls.
package uring
