// Package metrics exports a meshcast node's state to Prometheus.
//
// It keeps no counters of its own for what the hub, the transport and the
// cluster already count: NewCollector reads their Stats snapshots at
// scrape time and turns them into metric families (no double bookkeeping,
// nothing on the publish path). The distributions that need a measurement
// per event are Histograms, which implement hub.Observer and
// cluster.Observer: give it to hub.Config.Observer and
// cluster.Config.Observer.
//
// Every metric is registered on the prometheus.Registerer passed in,
// never on the global default registry, so two nodes can live in one
// process. Names follow Prometheus conventions: a meshcast_ prefix, base
// units (seconds, bytes), _total for counters, and label values from a
// small fixed set or, for peer metrics, the peer's node name (bounded by
// the cluster's size). No metric has a channel or user label.
//
// # Concurrency
//
// A Collector's Collect runs on the scraping goroutine and calls the
// Sources' functions, which must be safe for concurrent use (Hub.Stats
// and Cluster.Stats are). Histograms may be observed from any goroutine.
package metrics
