//go:build linux

package uring

import (
	"syscall"
	"testing"
)

// The floor of a fan-out's cost on this machine: 1,000 loopback TCP
// sockets, 100 bytes each, sent (and received) with one system call each
// or in batches of 16 through a ring. Reported per socket; the peer's
// receive path runs inside the send on loopback, so "send" is the whole
// kernel cost of a delivery but the reader's recv.

const benchSockets, benchBatch, benchSize = 1000, 16, 100

func BenchmarkSend(b *testing.B) {
	for _, mode := range []string{"write", "ring"} {
		b.Run(mode, func(b *testing.B) {
			ps := makePairs(b, benchSockets, true)
			r := newRing(b, benchBatch)
			msg := make([]byte, benchSize)
			drain := make([]byte, 64<<10)
			b.ResetTimer()
			for range b.N {
				if mode == "write" {
					for _, p := range ps {
						if _, err := syscall.Write(p.fd, msg); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					sendAll(b, r, ps, msg)
				}
				b.StopTimer()
				for _, p := range ps {
					if n, err := syscall.Read(p.peerFD, drain); err != nil || n != benchSize {
						b.Fatalf("drain: %d, %v", n, err)
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSockets), "ns/socket")
		})
	}
}

func BenchmarkRecv(b *testing.B) {
	for _, mode := range []string{"read", "ring"} {
		b.Run(mode, func(b *testing.B) {
			ps := makePairs(b, benchSockets, true)
			r := newRing(b, benchBatch)
			msg := make([]byte, benchSize)
			buf := make([]byte, benchBatch*4096)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, p := range ps {
					if _, err := syscall.Write(p.fd, msg); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if mode == "read" {
					for _, p := range ps {
						if n, err := syscall.Read(p.peerFD, buf[:4096]); err != nil || n != benchSize {
							b.Fatalf("read: %d, %v", n, err)
						}
					}
					continue
				}
				for i := 0; i < len(ps); i += benchBatch {
					for j, p := range ps[i:min(i+benchBatch, len(ps))] {
						r.Recv(p.peerFD, buf[j*4096:(j+1)*4096], uint64(j))
					}
					out, err := r.Submit(nil)
					if err != nil {
						b.Fatal(err)
					}
					for _, c := range out {
						if c.Res != benchSize {
							b.Fatalf("recv: %d", c.Res)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSockets), "ns/socket")
		})
	}
}

func sendAll(b *testing.B, r *Ring, ps []pair, msg []byte) {
	for i := 0; i < len(ps); i += r.Cap() {
		for j, p := range ps[i:min(i+r.Cap(), len(ps))] {
			r.Send(p.fd, msg, uint64(j))
		}
		out, err := r.Submit(nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range out {
			if c.Res != int32(len(msg)) {
				b.Fatalf("send: %d", c.Res)
			}
		}
	}
}
