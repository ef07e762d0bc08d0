package cluster

import (
	"testing"
	"unsafe"
)

// TestLocalChanIsSmall: a node of idle clients, each on a channel of its
// own, holds one localChan per client (BENCHMARKS.md, idle memory per
// connection); 16 bytes is a Go size class, one byte more costs 8.
func TestLocalChanIsSmall(t *testing.T) {
	if n := unsafe.Sizeof(localChan{}); n > 16 {
		t.Errorf("localChan is %d bytes, want at most 16", n)
	}
}
