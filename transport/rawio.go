package transport

import "errors"

// errWouldBlock reports that a non-blocking socket call could not proceed.
var errWouldBlock = errors.New("transport: would block")

// rawReader reads a socket without parking. It is owned by one worker; its
// callback is built once so a read does not allocate a closure.
type rawReader struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// rawWriter writes a socket without parking, for one shared writer.
type rawWriter struct {
	buf []byte // scratch the batch is copied into
	p   []byte // what the current call writes
	n   int
	err error
	fn  func(fd uintptr)

	ring *ringWriter // nil: one write(2) per connection
}
