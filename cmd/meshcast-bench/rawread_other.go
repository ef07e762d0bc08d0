//go:build !linux

package main

// rawReadSupported: --reader epoll needs Linux.
const rawReadSupported = false

type pollLoop struct{}

// handOff keeps the connection on its goroutine: no epoll here.
func (w *worker) handOff(*subscriber, *wsConn) bool { return false }
