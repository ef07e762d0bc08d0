package cluster

import (
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzNodeMeta feeds nodeInfoOf the metadata a gossip message carries
// (anyone's, in a cluster without a secret): it must never panic; what
// it accepts is our protocol with the fields the library reads, and
// addresses that split back into the host and port they were built from.
func FuzzNodeMeta(f *testing.F) {
	for _, m := range []nodeMeta{
		{PeerAddr: "10.0.0.2:7947", Proto: ProtocolVersion, Epoch: 42},
		{PeerAddr: ":7947", Proto: ProtocolVersion, Leaving: true},
		{PeerAddr: "[::1]:7947", Proto: ProtocolVersion},
		{PeerAddr: "nohost", Proto: ProtocolVersion},
		{PeerAddr: "10.0.0.2:7947", Proto: ProtocolVersion + 1},
	} {
		b, _ := msgpack.Marshal(m)
		f.Add(b, []byte{10, 0, 0, 1}, uint16(7946))
	}
	f.Add([]byte{0x80}, []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, meta, ip []byte, port uint16) {
		n := &memberlist.Node{Name: "peer", Addr: net.IP(ip), Port: port, Meta: meta}
		info, err := nodeInfoOf(n)
		if err != nil {
			return
		}
		var m nodeMeta
		if err := msgpack.Unmarshal(meta, &m); err != nil || m.Proto != ProtocolVersion {
			t.Fatalf("metadata % x accepted: %+v, %v", meta, m, err)
		}
		if info.name != "peer" || info.leaving != m.Leaving || info.epoch != m.Epoch {
			t.Fatalf("metadata %+v read as %+v", m, info)
		}
		host, p, err := net.SplitHostPort(info.peerAddr)
		_, wantPort, _ := net.SplitHostPort(m.PeerAddr)
		if err != nil || host == "" || p != wantPort {
			t.Fatalf("peer address %q from %q: host %q port %q, %v", info.peerAddr, m.PeerAddr, host, p, err)
		}
		if host, p, err := net.SplitHostPort(info.gossipAddr); err != nil || host != net.IP(ip).String() || p != strconv.Itoa(int(port)) {
			t.Fatalf("gossip address %q: %v", info.gossipAddr, err)
		}
	})
}
