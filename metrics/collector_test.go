package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport"
	"github.com/meshcast/meshcast/transport/wstest"
)

func fakeSources() Sources {
	return Sources{
		Hub: func() hub.Stats {
			return hub.Stats{Sessions: 3, Connects: 7, Publishes: 10, RemoteDeliveries: 4, Deliveries: 30, PeerDeliveries: 8,
				RefusedOrigin: 1, RefusedAuth: 2, RefusedUpgrade: 4, ErrCodes: map[string]uint64{"400": 5, "other": 1},
				Refreshes: 14, RefreshesRefused: 3,
				Transport: transport.Stats{Upgrades: 7, UpgradeErrors: 8, SlowConsumerCloses: 2, CloseCodes: map[string]uint64{"1008": 2}}}
		},
		Cluster: func() cluster.Stats {
			// PeerDrops and PeerDropsLinkDown exceed the links' sums: a
			// peer that dropped some is gone, its counts stay.
			return cluster.Stats{Standing: "isolated", HealthScore: 2, JunkGossipPackets: 11, JunkGossipStreams: 12,
				PeerDrops: 6, PeerDropsLinkDown: 5,
				Members: []cluster.MemberStats{{Name: "a", State: "alive"}, {Name: "b", State: "dead"}, {Name: "c", State: "alive"}},
				Links: []cluster.LinkStats{
					{Peer: "b", State: "backoff", Drops: 3, DropsLinkDown: 4, BytesSent: 100},
					{Peer: "c", State: "up", Drops: 1, InboundUp: true},
				}}
		},
		History: func() HistoryStats { return HistoryStats{Channels: 2, Messages: 9} },
	}
}

// TestCollector checks the families against the snapshots they read, on a
// pedantic registry (which also checks every metric against its Desc).
func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(fakeSources()), NewBuildInfoCollector(ReadBuildInfo("v9.9.9")))
	want := `
# HELP meshcast_deliveries_total Messages queued to local subscribers, by where the publish was made: local or peer.
# TYPE meshcast_deliveries_total counter
meshcast_deliveries_total{origin="local"} 22
meshcast_deliveries_total{origin="peer"} 8
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "meshcast_deliveries_total"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"meshcast_connections":               3,
		"meshcast_members":                   3, // summed over states
		"meshcast_standing":                  1,
		"meshcast_drops_total":               2 + 6 + 5,
		"meshcast_upgrade_failures_total":    1 + 2 + 4 + 8,
		"meshcast_err_frames_total":          6,
		"meshcast_token_refreshes_total":     14 + 3,
		"meshcast_junk_gossip_packets_total": 11,
		"meshcast_junk_gossip_streams_total": 12,
		"meshcast_history_messages":          9,
		"meshcast_build_info":                1,
	} {
		if got := sum(t, reg, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "meshcast_peer_link_state"); err != nil || n != 8 {
		t.Fatalf("peer link state series: %d, %v", n, err)
	}
}

// sum adds every series of a family.
func sum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

func TestHistograms(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	h, err := NewHistograms(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.SubscribeAcked(time.Millisecond)
	h.PublishQueued(3 * time.Microsecond)
	h.LinkRoundTrip("b", 2*time.Millisecond)
	for _, name := range []string{"meshcast_subscribe_ack_wait_seconds", "meshcast_publish_enqueue_seconds", "meshcast_peer_round_trip_seconds"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Fatalf("%s: %d series, %v", name, n, err)
		}
	}
	if _, err := NewHistograms(reg); err == nil {
		t.Fatal("registering twice on one registry did not fail")
	}
}

// TestTwoNodesOneProcess: nothing is global, so two collectors live side
// by side on their own registries.
func TestTwoNodesOneProcess(t *testing.T) {
	for range 2 {
		reg := prometheus.NewRegistry()
		if _, err := NewHistograms(reg); err != nil {
			t.Fatal(err)
		}
		reg.MustRegister(NewCollector(fakeSources()))
	}
}

func BenchmarkPublishQueued(b *testing.B) {
	h, err := NewHistograms(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.PublishQueued(2 * time.Microsecond)
	}
}

// TestHubSourceHasHistoryAndPresence: Sources{Hub: h.Stats}, as the README
// wires it, exports the history and presence families from the hub's own
// snapshot; an embedder does not have to convert them by hand.
func TestHubSourceHasHistoryAndPresence(t *testing.T) {
	h, err := hub.New(hub.Config{Security: hub.SecurityConfig{Namespaces: map[string]hub.Namespace{
		"chat": {History: 10},
		"room": {Presence: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() {
		srv.Close()
		if err := h.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	defer c.Conn.Close()
	c.MustAck(`{"op":"sub","ch":"room:1","id":1}`)
	for range 3 {
		if err := h.Publish(context.Background(), "chat:lobby", []byte(`"hi"`)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(Sources{Hub: h.Stats}))
	for name, want := range map[string]float64{
		"meshcast_history_messages": 3,
		"meshcast_history_channels": 1,
		"meshcast_presence_members": 1,
	} {
		if got := sum(t, reg, name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}
