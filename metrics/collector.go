package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
)

// Sources are what a Collector reads at each scrape. A nil function is
// skipped: a node without a cluster, or a feature not wired yet. For a
// hub, Sources{Hub: h.Stats, Cluster: cl.Stats} is the whole node (Cluster
// nil without one).
type Sources struct {
	Hub     func() hub.Stats
	Cluster func() cluster.Stats
	// History and Presence, when set, are read for the history and
	// presence families instead of the Hub snapshot's History and
	// Presence, which are used when they are nil.
	History  func() HistoryStats
	Presence func() PresenceStats
}

// HistoryStats is the size of a node's message history.
type HistoryStats struct {
	Channels int    // channels with history kept
	Messages int    // messages kept
	Bytes    int64  // bytes kept
	Evicted  uint64 // messages evicted to stay within the memory limit

	Recoveries, RecoveriesPartial uint64 // subscribes with since; those not complete
	Refills, RefillsIncomplete    uint64 // catch-ups after a gap; those that left a hole
	NotStored                     uint64 // publishes refused: not held by enough nodes
}

// PresenceStats is the size of a node's presence tables.
type PresenceStats struct {
	Channels int // channels with presence
	Members  int // (channel, client) entries
}

// stat is one metric read from a snapshot of type S.
type stat[S any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	val  func(*S) float64
}

// labeled is a family with one label whose values come from a snapshot.
type labeled[S any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	vals func(*S) map[string]float64
}

// Collector turns Stats snapshots into metrics at scrape time.
type Collector struct {
	src         Sources
	hub         []stat[hub.Stats]
	hubLabeled  []labeled[hub.Stats]
	cl          []stat[cluster.Stats]
	clLabeled   []labeled[cluster.Stats]
	peers       []peerStat
	peerState   *prometheus.Desc
	drops       *prometheus.Desc
	history     []stat[HistoryStats]
	presence    []stat[PresenceStats]
	descriptors []*prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over src; register it on your
// registry (reg.MustRegister(metrics.NewCollector(src))).
func NewCollector(src Sources) *Collector {
	c := &Collector{
		src:        src,
		hub:        hubStats(),
		hubLabeled: hubLabeled(),
		cl:         clusterStats(),
		clLabeled:  clusterLabeled(),
		peers:      peerStats(),
		peerState: prometheus.NewDesc("meshcast_peer_link_state",
			"1 for the state this node's outbound link to the peer is in (connecting, up, backoff, closed), 0 for the others.",
			[]string{"peer", "state"}, nil),
		drops: prometheus.NewDesc("meshcast_drops_total",
			"What this node dropped, by reason: slow_consumer (connections cut with 1008, their queue dropped), "+
				"peer_queue_full and peer_link_down (publishes not forwarded to a peer; summed over current peers).",
			[]string{"reason"}, nil),
		history:  historyStats(),
		presence: presenceStats(),
	}
	c.descriptors = c.allDescs()
	return c
}

func (c *Collector) allDescs() []*prometheus.Desc {
	ds := []*prometheus.Desc{c.peerState, c.drops}
	for _, s := range c.hub {
		ds = append(ds, s.desc)
	}
	for _, s := range c.hubLabeled {
		ds = append(ds, s.desc)
	}
	for _, s := range c.cl {
		ds = append(ds, s.desc)
	}
	for _, s := range c.clLabeled {
		ds = append(ds, s.desc)
	}
	for _, s := range c.peers {
		ds = append(ds, s.desc)
	}
	for _, s := range c.history {
		ds = append(ds, s.desc)
	}
	for _, s := range c.presence {
		ds = append(ds, s.desc)
	}
	return ds
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descriptors {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot of each source.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var hs *hub.Stats
	var cs *cluster.Stats
	if c.src.Hub != nil {
		s := c.src.Hub()
		hs = &s
		emit(ch, c.hub, hs)
		emitLabeled(ch, c.hubLabeled, hs)
	}
	if c.src.Cluster != nil {
		s := c.src.Cluster()
		cs = &s
		emit(ch, c.cl, cs)
		emitLabeled(ch, c.clLabeled, cs)
		c.collectPeers(ch, cs)
	}
	c.collectDrops(ch, hs, cs)
	if c.src.History != nil {
		s := c.src.History()
		emit(ch, c.history, &s)
	} else if hs != nil {
		s := historyOf(hs.History)
		emit(ch, c.history, &s)
	}
	if c.src.Presence != nil {
		s := c.src.Presence()
		emit(ch, c.presence, &s)
	} else if hs != nil {
		s := PresenceStats{Channels: hs.Presence.Channels, Members: hs.Presence.Entries}
		emit(ch, c.presence, &s)
	}
}

// historyOf is the history families' view of a hub's figures.
func historyOf(h hub.HistoryStats) HistoryStats {
	return HistoryStats{
		Channels: h.Channels, Messages: h.Messages, Bytes: h.Bytes, Evicted: h.EvictedForMemory,
		Recoveries: h.Recoveries, RecoveriesPartial: h.RecoveriesPartial,
		Refills: h.Refills, RefillsIncomplete: h.RefillsIncomplete, NotStored: h.NotStored,
	}
}

func emit[S any](ch chan<- prometheus.Metric, stats []stat[S], s *S) {
	for _, st := range stats {
		ch <- prometheus.MustNewConstMetric(st.desc, st.typ, st.val(s))
	}
}

func emitLabeled[S any](ch chan<- prometheus.Metric, fams []labeled[S], s *S) {
	for _, f := range fams {
		for label, v := range f.vals(s) {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, label)
		}
	}
}

func (c *Collector) collectDrops(ch chan<- prometheus.Metric, hs *hub.Stats, cs *cluster.Stats) {
	if hs != nil {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue,
			float64(hs.Transport.SlowConsumerCloses), "slow_consumer")
	}
	if cs == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(cs.PeerDrops), "peer_queue_full")
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(cs.PeerDropsLinkDown), "peer_link_down")
}

// newDesc is a metric without variable labels.
func newDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
