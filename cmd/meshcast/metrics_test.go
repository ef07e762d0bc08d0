package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport/wstest"
)

// TestMetricsUnderLoad scrapes /metrics of a 3-node cluster while it
// carries publishes, then checks every family against /api/stats and
// /api/cluster once the load is over.
func TestMetricsUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3)
	const perPublisher = 300
	var subs []*wstest.Client
	for _, nd := range nodes {
		for range 3 {
			c := wstest.Dial(t, nd.wsURL())
			c.MustAck(`{"op":"sub","ch":"load","id":1}`)
			subs = append(subs, c)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, nd := range nodes { // scrapes during the load
		wg.Add(1)
		go func() { defer wg.Done(); scrapeUntil(t, nd.baseURL()+"/metrics", stop) }()
	}
	for _, nd := range nodes {
		pub := wstest.Dial(t, nd.wsURL())
		for i := range perPublisher {
			pub.SendText(fmt.Sprintf(`{"op":"pub","ch":"load","data":%d}`, i))
		}
		pub.MustAck(`{"op":"pub","ch":"elsewhere","data":0,"id":1}`)
		pub.SendText(`{"op":"nope"}`) // an err 400
		if m := pub.ReadJSON(); m["code"] != float64(400) {
			t.Fatalf("want err 400, got %v", m)
		}
		pub.SendFrame(ws.NewBinaryFrame([]byte("x"))) // closed with 1003
		if code, _ := pub.ExpectClose(); code != 1003 {
			t.Fatalf("binary frame closed with %d", code)
		}
		wstest.UpgradeStatus(t, nd.wsURL(), http.Header{"Origin": {"https://evil.example"}}) // refused: origin
	}
	for _, c := range subs {
		for range len(nodes) * perPublisher {
			if m := c.ReadJSON(); m["op"] != "msg" {
				t.Fatalf("subscriber got %v", m)
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, nd := range nodes {
		checkMetrics(t, nd, len(nodes))
	}
}

// scrapeUntil scrapes url until stop, failing on any answer but 200.
func scrapeUntil(t *testing.T, url string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("scrape: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("scrape: %d", resp.StatusCode)
			return
		}
	}
}

// snapshot is one node's /metrics with /api/stats and /api/cluster taken
// around it.
type snapshot struct {
	fams    map[string]*dto.MetricFamily
	hub     hub.Stats
	cluster cluster.Stats
}

func takeSnapshot(t *testing.T, nd *node) (snapshot, bool) {
	var s snapshot
	var before hub.Stats
	getJSON(t, nd.baseURL()+"/api/stats", &before)
	getJSON(t, nd.baseURL()+"/api/cluster", &s.cluster)
	s.fams = scrape(t, nd.baseURL()+"/metrics")
	getJSON(t, nd.baseURL()+"/api/stats", &s.hub)
	// Stable when nothing moved meanwhile (gossip never touches these).
	stable := before.Deliveries == s.hub.Deliveries && before.Transport.Writes == s.hub.Transport.Writes
	return s, stable
}

func checkMetrics(t *testing.T, nd *node, n int) {
	t.Helper()
	var s snapshot
	wstest.WaitFor(t, 10*time.Second, "quiet counters", func() bool {
		var ok bool
		s, ok = takeSnapshot(t, nd)
		return ok
	})
	h, tr := s.hub, s.hub.Transport
	for _, c := range []struct {
		name   string
		labels string
		want   float64
	}{
		{"meshcast_connections", "", float64(h.Sessions)},
		{"meshcast_connections_total", "", float64(h.Connects)},
		{"meshcast_upgrades_total", "", float64(tr.Upgrades)},
		{"meshcast_subscriptions", "", float64(h.Subscriptions)},
		{"meshcast_channels", "", float64(h.Channels)},
		{"meshcast_publishes_total", "origin=local", float64(h.Publishes)},
		{"meshcast_publishes_total", "origin=peer", float64(h.RemoteDeliveries)},
		{"meshcast_deliveries_total", "origin=local", float64(h.Deliveries - h.PeerDeliveries)},
		{"meshcast_deliveries_total", "origin=peer", float64(h.PeerDeliveries)},
		{"meshcast_bad_requests_total", "", float64(h.BadRequests)},
		{"meshcast_err_frames_total", "code=400", float64(h.ErrCodes["400"])},
		{"meshcast_close_frames_total", "code=1003", float64(tr.CloseCodes["1003"])},
		{"meshcast_upgrade_failures_total", "reason=origin", float64(h.RefusedOrigin)},
		{"meshcast_gap_frames_total", "", float64(h.Gaps)},
		{"meshcast_interest_timeouts_total", "", float64(h.InterestTimeouts)},
		{"meshcast_drops_total", "reason=slow_consumer", float64(tr.SlowConsumerCloses)},
		{"meshcast_drops_total", "reason=peer_queue_full", float64(s.cluster.PeerDrops)},
		{"meshcast_drops_total", "reason=peer_link_down", float64(s.cluster.PeerDropsLinkDown)},
		{"meshcast_handshake_failures_total", "", float64(s.cluster.HandshakeFailures)},
		{"meshcast_standing", "state=ready", 1},
		{"meshcast_members", "state=alive", float64(n)},
		{"meshcast_build_info", "", 1},
	} {
		if got := value(t, s.fams, c.name, c.labels); got != c.want {
			t.Errorf("%s: %s{%s} = %v, want %v", nd.cluster.Name(), c.name, c.labels, got, c.want)
		}
	}
	// The load itself: every node published 300 and delivered 2,700.
	if h.Publishes < 300 || h.Deliveries < 2700 || h.ErrCodes["400"] != 1 || tr.CloseCodes["1003"] != 1 || h.RefusedOrigin != 1 {
		t.Errorf("%s: the load is not in the stats: %+v", nd.cluster.Name(), h)
	}
	checkPeerMetrics(t, s)
	for _, fam := range []string{"meshcast_subscribe_ack_wait_seconds", "meshcast_publish_enqueue_seconds",
		"meshcast_peer_round_trip_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if s.fams[fam] == nil {
			t.Errorf("%s: family %s missing", nd.cluster.Name(), fam)
		}
	}
	// One publish in 16 is timed.
	if got := s.fams["meshcast_publish_enqueue_seconds"].Metric[0].GetHistogram().GetSampleCount(); got != h.Publishes/16 {
		t.Errorf("publish histogram counted %d, stats %d publishes", got, h.Publishes)
	}
}

// checkPeerMetrics compares the per-peer families with /api/cluster.
func checkPeerMetrics(t *testing.T, s snapshot) {
	t.Helper()
	for _, l := range s.cluster.Links {
		peer := "peer=" + l.Peer
		for name, want := range map[string]float64{
			"meshcast_peer_sent_frames_total":        float64(l.MsgsSent),
			"meshcast_peer_sent_bytes_total":         float64(l.BytesSent),
			"meshcast_peer_received_frames_total":    float64(l.MsgsReceived),
			"meshcast_peer_dropped_queue_full_total": float64(l.Drops),
			"meshcast_peer_reconnects_total":         float64(l.Reconnects),
			"meshcast_peer_inbound_up":               1,
		} {
			if got := value(t, s.fams, name, peer); got != want {
				t.Errorf("%s{%s} = %v, want %v", name, peer, got, want)
			}
		}
		if got := value(t, s.fams, "meshcast_peer_link_state", peer+",state=up"); got != 1 {
			t.Errorf("link to %s not up in metrics", l.Peer)
		}
		if l.MsgsSent < 300 {
			t.Errorf("link to %s carried %d publishes", l.Peer, l.MsgsSent)
		}
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// value is the sample of family name whose labels are exactly labels
// ("k=v,k2=v2", "" for none).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name, labels string) float64 {
	t.Helper()
	fam := fams[name]
	if fam == nil {
		t.Errorf("family %s missing", name)
		return -1
	}
	for _, m := range fam.Metric {
		var kv []string
		for _, l := range m.Label {
			kv = append(kv, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(kv, ",") != labels {
			continue
		}
		return m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	if name == "meshcast_build_info" { // labels are the build's
		return fam.Metric[0].GetGauge().GetValue()
	}
	t.Errorf("%s{%s}: no such series", name, labels)
	return -1
}

// TestMetricsListen: with --metrics-listen, /metrics is served there and
// not on --listen.
func TestMetricsListen(t *testing.T) {
	cfg := testNodeConfig(t)
	cfg.metricsListen = "127.0.0.1:0"
	n := startTestNode(t, cfg, nodeOptions{})
	if status, _ := get(t, n.baseURL()+"/metrics"); status != http.StatusNotFound {
		t.Fatalf("/metrics on --listen: %d", status)
	}
	status, body := get(t, "http://"+n.metrics.ln.Addr().String()+"/metrics")
	if status != 200 || !strings.Contains(body, "meshcast_build_info{") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics on --metrics-listen: %d %.300s", status, body)
	}
}
