package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/metrics"
)

// A service exports its hub on its own registry, beside its own metrics;
// nothing is registered globally. With a cluster, give hist to
// cluster.Config.Observer too and add Cluster: cl.Stats to the Sources.
func ExampleNewCollector() {
	reg := prometheus.NewRegistry()
	hist, err := metrics.NewHistograms(reg) // timings, for hub.Config.Observer
	if err != nil {
		panic(err)
	}
	h, err := hub.New(hub.Config{
		Observer: hist,
		Security: hub.SecurityConfig{Namespaces: map[string]hub.Namespace{"chat": {History: 100}}},
	})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	reg.MustRegister(metrics.NewCollector(metrics.Sources{Hub: h.Stats}))

	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	h.Publish(context.Background(), "chat:lobby", []byte(`"hello"`))
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if line := sc.Text(); strings.HasPrefix(line, "meshcast_publishes_total") || strings.HasPrefix(line, "meshcast_history_messages") {
			fmt.Println(line)
		}
	}
	// Output:
	// meshcast_history_messages 1
	// meshcast_publishes_total{origin="local"} 1
	// meshcast_publishes_total{origin="peer"} 0
}
