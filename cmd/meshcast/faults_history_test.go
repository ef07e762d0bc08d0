//go:build faults

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The history channel's check (issue 11). Every scenario runs the same
// traffic on histChannel, whose namespace keeps history. Its subscribers
// resume after a reconnect with since = the last pos they received, so a
// client's connections are checked as one stream: its events in order,
// with a seam where one connection ended and the next began. A seam whose
// sub was acked recovered:true is no excuse for a hole, a duplicate or a
// reorder across it; one acked recovered:false (or never acked, or a sub
// without since because no pos had come yet) counts as a gap there.
// Everything else is the plain channel's check. On top of it: a history
// subscriber that stayed connected through the fault gets every acked
// publish, whatever gap frames it was sent, since its node refills what
// it missed from its peers (unless the scenario says why not:
// refillExempt).

// histClient is one history subscriber client: its connections in order,
// spliced into one stream for the check, and what the check found.
type histClient struct {
	name    string
	streams []*subStream
	spliced *subStream
	tally   subTally
}

// histResult is the history channel's check and its figures.
type histResult struct {
	checkResult
	clients []*histClient
	pubs    []*pubStream

	gapFrames, plainGapFrames int // gap frames received, every connection
	plainMissedGap            int // acked publishes the plain channel's subscribers missed under a gap
	recoveredTrue             int // connections after the first, by their sub's ack
	recoveredFalse            int
	recoveryUnacked           int // ended (or the test did) before the ack
	resumedWithoutPos         int // reconnected before any pos came: a sub without since
	recoveryAckMax            time.Duration
	notStored                 int // pubs answered err 503 "not stored on enough nodes"
	notStoredDelivered        int // of those, how many reached some subscriber
}

// spliceClients groups the history subscriber streams by client, each
// client's connections in order.
func spliceClients(subs []*subStream) []*histClient {
	byName := map[string]*histClient{}
	var out []*histClient
	for _, s := range subs {
		c := byName[s.client]
		if c == nil {
			c = &histClient{name: s.client}
			byName[s.client] = c
			out = append(out, c)
		}
		c.streams = append(c.streams, s)
	}
	for _, c := range out {
		sort.Slice(c.streams, func(i, j int) bool { return c.streams[i].gen < c.streams[j].gen })
		c.spliced = splice(c.streams)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// splice makes one stream of a client's connections: the first one's
// ack, the last one's end, and a seam before each later connection's
// events, a gap unless its sub was acked recovered:true.
func splice(streams []*subStream) *subStream {
	first, last := streams[0], streams[len(streams)-1]
	var names []string
	for _, s := range streams {
		names = append(names, fmt.Sprintf("%d(n%d)", s.gen, s.node))
	}
	v := newSubStream(first.client+"."+strings.Join(names, "+"), first.home, first.node)
	v.client, v.ch, v.gen = first.client, first.ch, first.gen
	v.ackAt, v.ackPos, v.recovered = first.ackAt, first.ackPos, first.recovered
	v.endAt, v.endErr, v.byTest = last.endAt, last.endErr, last.byTest
	for i, s := range streams {
		s.mu.Lock()
		if i > 0 {
			at := s.ackAt
			if at.IsZero() {
				at = s.endAt
			}
			v.events = append(v.events, event{seam: true, gap: !recovered(s), at: at})
		}
		v.events = append(v.events, s.events...)
		for code, n := range s.subErrs {
			v.subErrs[code] += n
		}
		for _, bad := range s.badData {
			v.badData = append(v.badData, s.name+": "+bad)
		}
		s.mu.Unlock()
	}
	return v
}

// recovered reports whether s resumed with since and was acked
// recovered:true.
func recovered(s *subStream) bool {
	return s.since != "" && !s.ackAt.IsZero() && s.recovered != nil && *s.recovered
}

// checkHistoryTraffic checks the history channel's streams.
func checkHistoryTraffic(subs []*subStream, pubs []*pubStream, rel func(time.Time) string) *histResult {
	clients := spliceClients(subs)
	spliced := make([]*subStream, len(clients))
	for i, c := range clients {
		spliced[i] = c.spliced
	}
	h := &histResult{checkResult: checkTraffic(spliced, pubs, rel), clients: clients, pubs: pubs}
	for i, c := range clients {
		c.tally = h.subs[i]
		h.countRecoveries(c)
	}
	for _, s := range subs {
		h.gapFrames += countGaps(s)
	}
	h.countNotStored(spliced)
	return h
}

// countRecoveries counts how each reconnection of c resumed, and checks
// that its last one was acked if the test ended it.
func (h *histResult) countRecoveries(c *histClient) {
	for _, s := range c.streams[1:] {
		switch {
		case s.since == "":
			h.resumedWithoutPos++
		case s.ackAt.IsZero():
			h.recoveryUnacked++
		case recovered(s):
			h.recoveredTrue++
		default:
			h.recoveredFalse++
		}
		if s.since != "" && !s.ackAt.IsZero() && !s.subAt.IsZero() {
			h.recoveryAckMax = max(h.recoveryAckMax, s.ackAt.Sub(s.subAt))
		}
	}
	if last := c.streams[len(c.streams)-1]; last.byTest && last.ackAt.IsZero() && len(c.streams) > 1 {
		h.violations = append(h.violations, fmt.Sprintf("%s (on n%d): its sub with since was still not acked when the test ended (errs by code: %v)",
			last.name, last.node, last.subErrs))
	}
}

// countNotStored counts the publishes refused as not stored, and those of
// them that arrived anyway (allowed, once: the check sees duplicates).
func (h *histResult) countNotStored(spliced []*subStream) {
	got := map[string]map[int]bool{}
	for _, s := range spliced {
		for _, e := range s.events {
			if !e.gap && !e.seam {
				if got[e.pub] == nil {
					got[e.pub] = map[int]bool{}
				}
				got[e.pub][e.seq] = true
			}
		}
	}
	for _, p := range h.pubs {
		for i, ns := range p.notStored {
			if ns {
				h.notStored++
				if got[p.name][i+1] {
					h.notStoredDelivered++
				}
			}
		}
	}
}

// stayedConnectedComplete: a history client with a single connection,
// ended by the test, has every acked publish of its time, whatever gap
// frames it got: what its node missed, the node refilled from its peers.
func (h *histResult) stayedConnectedComplete() {
	for _, c := range h.clients {
		if len(c.streams) != 1 || !c.streams[0].byTest {
			continue
		}
		if missed := c.tally.missGap + c.tally.missClose; missed > 0 {
			h.violations = append(h.violations, fmt.Sprintf(
				"NOT REFILLED: %s (on n%d) stayed connected, yet %d acked publish(es) never reached it (covered by %d gap frame(s)): its node did not refill them from its peers",
				c.streams[0].name, c.streams[0].node, missed, c.tally.gaps))
		}
	}
}

// checkHistory checks the history channel's traffic of the scenario.
func (sc *scenario) checkHistory(all []*subStream, allPubs []*pubStream) *histResult {
	subs, pubs := onChannel(histChannel, all, allPubs)
	h := checkHistoryTraffic(subs, pubs, sc.rel)
	if sc.refillExempt == "" {
		h.stayedConnectedComplete()
	} else {
		sc.note("history subscribers that stayed connected may miss acked publishes here: %s", sc.refillExempt)
	}
	plain, _ := onChannel(faultChannel, all, allPubs)
	for _, s := range plain {
		h.plainGapFrames += countGaps(s)
	}
	return h
}

// table shows every history client: its connections, how each resumed,
// what it received, gaps and missed publishes by cover.
func (h *histResult) table() string {
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "publisher\tnode\tsent\tacked\tnot stored\trefused\tunanswered\tended\t")
	for _, p := range h.pubs {
		var pt pubTally
		pt.refused = map[int]int{}
		pt.add(p)
		ns := 0
		for _, x := range p.notStored {
			if x {
				ns++
			}
		}
		pt.refused[503] -= ns
		if pt.refused[503] == 0 {
			delete(pt.refused, 503)
		}
		fmt.Fprintf(w, "%s\tn%d\t%d\t%d\t%d\t%v\t%d\t%s\t\n", p.name, p.node, pt.attempted, pt.acked, ns, pt.refused, pt.unanswered, endReason(p.endErr, p.byTest))
	}
	fmt.Fprintln(w, "subscriber\tconnections (resumed)\treceived\tgaps\tmissed+gap/recovered:false\tmissed+disconnect\tmissed SILENTLY\t")
	for _, c := range h.clients {
		var conns []string
		for _, s := range c.streams {
			how := ""
			switch {
			case s.gen == 1:
			case s.since == "":
				how = " no pos"
			case s.ackAt.IsZero():
				how = " unacked"
			default:
				how = fmt.Sprintf(" recovered:%v", recovered(s))
			}
			conns = append(conns, fmt.Sprintf("%s n%d%s", s.name, s.node, how))
		}
		t := c.tally
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", c.name, strings.Join(conns, ", "), t.received, t.gaps, t.missGap, t.missClose, t.missSilent)
	}
	_ = w.Flush()
	return buf.String()
}

// histReport is the history channel's part of a FAULT_REPORT line.
type histReport struct {
	Attempted          int               `json:"publishes_attempted"`
	Acked              int               `json:"publishes_acked"`
	NotStored          int               `json:"publishes_not_stored"` // err 503: not held by enough nodes
	NotStoredDelivered int               `json:"not_stored_delivered"` // of those, reached some subscriber (once)
	Refused            map[int]int       `json:"publishes_refused"`    // other refusals, by err code
	Unanswered         int               `json:"publishes_unanswered"`
	Delivered          int               `json:"delivered"`
	GapFrames          int               `json:"gap_frames"`           // received on the history channel
	PlainGapFrames     int               `json:"plain_gap_frames"`     // on the channel without history, same traffic
	Gaps               map[string]int    `json:"gaps_per_subscriber"`  // by client
	MissedCovered      int               `json:"missed_covered"`       // acked publishes not received, under a gap or recovered:false
	PlainMissedCovered int               `json:"plain_missed_covered"` // the same on the channel without history
	Silent             int               `json:"missed_silently"`
	RecoveredTrue      int               `json:"recovered_true"` // reconnections by their ack
	RecoveredFalse     int               `json:"recovered_false"`
	RecoveryUnacked    int               `json:"recoveries_unacked"`    // the connection ended first
	ResumedWithoutPos  int               `json:"resumed_without_pos"`   // no pos had come before the reconnect
	RecoveryAckMaxS    float64           `json:"recovery_ack_max_s"`    // sub with since to its ack, slowest
	Node               map[string]uint64 `json:"node_history_counters"` // /api/stats history, summed over node processes
	Violations         int               `json:"violations"`
	Clients            int               `json:"subscriber_clients"`
	Connections        int               `json:"subscriber_connections"`
	StayedConnected    int               `json:"subscribers_stayed_connected"`
}

func (h *histResult) report(plain *checkResult, node map[string]uint64) *histReport {
	pt := h.checkResult.pubs
	refused := map[int]int{}
	for k, v := range pt.refused {
		refused[k] = v
	}
	r := &histReport{Attempted: pt.attempted, Acked: pt.acked, Refused: refused,
		Unanswered: pt.unanswered, NotStored: h.notStored, NotStoredDelivered: h.notStoredDelivered,
		Delivered: h.delivered, GapFrames: h.gapFrames, PlainGapFrames: h.plainGapFrames, Gaps: map[string]int{},
		RecoveredTrue: h.recoveredTrue, RecoveredFalse: h.recoveredFalse, RecoveryUnacked: h.recoveryUnacked,
		ResumedWithoutPos: h.resumedWithoutPos, RecoveryAckMaxS: roundSeconds(h.recoveryAckMax),
		Node: node, Violations: len(h.violations), Clients: len(h.clients)}
	if r.Refused[503] -= h.notStored; r.Refused[503] == 0 {
		delete(r.Refused, 503)
	}
	for _, c := range h.clients {
		r.Gaps[c.name] = c.tally.gaps
		r.MissedCovered += c.tally.missGap
		r.Silent += c.tally.missSilent
		r.Connections += len(c.streams)
		if len(c.streams) == 1 {
			r.StayedConnected++
		}
	}
	if plain != nil {
		for _, t := range plain.subs {
			r.PlainMissedCovered += t.missGap
		}
	}
	return r
}

// nodeHistoryCounters are the counters of /api/stats "history" summed
// over node processes (the others there are levels, not counts), and
// interest_timeouts (subs, with since or not, acked or recovered before
// every peer confirmed them: a recovery acked recovered:false for it).
var nodeHistoryCounters = []string{"refills", "refills_incomplete", "refilled", "recoveries", "recoveries_partial", "not_stored", "evicted_for_memory"}

// keepNodeStats adds the history counters of n's current process to the
// scenario's, once per process: call it before the process ends.
func (sc *scenario) keepNodeStats(n *faultNode) {
	inc := n.current()
	sc.mu.Lock()
	done := inc == nil || sc.nodeStatsRead[inc]
	sc.mu.Unlock()
	if done || !inc.running() {
		return
	}
	status, b, err := httpGet(sc.http, "http://"+n.httpAddr+"/api/stats")
	var st struct {
		History          map[string]float64 `json:"history"`
		InterestTimeouts uint64             `json:"interest_timeouts"`
	}
	if err == nil && status == 200 {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || status != 200 {
		sc.note("%s /api/stats not read (its history counters are left out): %d %v", n, status, err)
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.nodeStatsRead[inc] = true
	for _, k := range nodeHistoryCounters {
		sc.nodeStats[k] += uint64(st.History[k])
	}
	sc.nodeStats["interest_timeouts"] += st.InterestTimeouts
}

// collectNodeStats reads every running node process not read yet.
func (sc *scenario) collectNodeStats() {
	for _, n := range sc.nodes {
		sc.keepNodeStats(n)
	}
	sc.mu.Lock()
	keys := slices.Sorted(maps.Keys(sc.nodeStats))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, sc.nodeStats[k]))
	}
	sc.mu.Unlock()
	sc.note("history counters of the nodes (every process): %s", strings.Join(parts, ", "))
}
