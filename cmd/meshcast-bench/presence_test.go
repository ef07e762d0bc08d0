package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	mcluster "github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
)

// presenceNodes starts n in-process nodes (hub and cluster) serving what
// the presence scenario reads: /ws, /api/presence(_stats), /api/cluster.
func presenceNodes(t *testing.T, n int) (urls, clusterURLs []string) {
	t.Helper()
	var seed string
	for i := range n {
		ccfg := mcluster.DefaultConfig()
		ccfg.NodeName = fmt.Sprintf("p%d", i)
		ccfg.GossipAddr, ccfg.PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
		ccfg.Secret = []byte("bench test secret")
		ccfg.Memberlist = func(mc *memberlist.Config) {
			mc.GossipInterval = 50 * time.Millisecond
			// A probe in flight outlives Shutdown by its timeout: keep it
			// well inside goleak's retries.
			mc.ProbeTimeout = 100 * time.Millisecond
		}
		if seed != "" {
			ccfg.Join = []string{seed}
		}
		cl, err := mcluster.New(ccfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg := hub.DefaultConfig()
		cfg.Cluster = cl
		cfg.Security.Namespaces = map[string]hub.Namespace{"room": {Presence: true}}
		h, err := hub.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/ws", h)
		mux.Handle("/api/", hub.NewAPI(h, "k"))
		mux.HandleFunc("/api/cluster", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(cl.Stats()) })
		srv := httptest.NewServer(mux)
		t.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			h.Shutdown(ctx)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = h.Ready(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if seed == "" {
			seed = fmt.Sprintf("127.0.0.1:%d", cl.GossipPort())
		}
		urls = append(urls, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
		clusterURLs = append(clusterURLs, srv.URL+"/api/cluster")
	}
	return urls, clusterURLs
}

// TestPresenceScenario: the scenario on two real nodes: every member
// counted on both, the churn's events made and replicated (one frame per
// event to the one peer), the answers timed.
func TestPresenceScenario(t *testing.T) {
	urls, clusterURLs := presenceNodes(t, 2)
	cfg := presenceConfig{URLs: urls, ClusterURLs: clusterURLs, APIKey: "k", Channel: "room:b",
		Members: 40, Rate: 100, Duration: 500 * time.Millisecond, Queries: 2, DialConc: 8}
	rep, err := runPresence(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events < 40 || rep.FramesPerEvent < 0.9 || rep.FramesPerEvent > 1.1 || rep.BytesPerEvent <= 0 {
		t.Fatalf("events %d, %.2f frames and %.0f bytes per event (one peer each)", rep.Events, rep.FramesPerEvent, rep.BytesPerEvent)
	}
	for _, n := range rep.Nodes {
		if n.MembersQueried != 40 && n.MembersQueried != 39 || n.OpQueryP50Ms <= 0 || n.APIQueryP50Ms <= 0 || n.InterestSent != 0 {
			t.Fatalf("node %+v", n)
		}
	}
	var out strings.Builder
	printPresence(&out, rep)
	if !strings.Contains(out.String(), "frames and") {
		t.Fatalf("table:\n%s", out.String())
	}
}
