//go:build !linux

package transport

import "syscall"

func newRawReader(size int) *rawReader { return &rawReader{buf: make([]byte, size)} }

func (r *rawReader) read(syscall.RawConn) (int, error) { return 0, errWouldBlock }

func newRawWriter(size int) *rawWriter { return &rawWriter{buf: make([]byte, size)} }

// write always hands over to a blocking writer goroutine outside Linux.
func (w *rawWriter) write(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
