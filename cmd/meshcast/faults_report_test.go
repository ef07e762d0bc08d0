//go:build faults

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// maxShown bounds the violations printed in one failure message.
const maxShown = 40

// finish stops publishing, lets every answer and delivery arrive (or a
// deadline pass), stops every client, and checks what each received.
func (sc *scenario) finish() {
	sc.t.Helper()
	sc.note("publishers stop; waiting for their answers and for subscribers to catch up")
	sc.tr.stopPublishing()
	if _, ok, why := poll(time.Now(), drainDeadline, 50*time.Millisecond, sc.pubsAnswered); !ok {
		sc.note("not every publish answered within %v: %s", drainDeadline, why)
	}
	if _, ok, why := poll(time.Now(), drainDeadline, 50*time.Millisecond, sc.subsCaughtUp); !ok {
		sc.note("not every subscriber caught up within %v: %s (the check says what is missing)", drainDeadline, why)
	}
	sc.tr.stopAll()
	sc.note("clients stopped; checking")
	sc.collectNodeStats()
	all, allPubs := sc.tr.streams()
	subs, pubs := onChannel(faultChannel, all, allPubs)
	res := checkTraffic(subs, pubs, sc.rel)
	res.violations = append(res.violations, sc.tr.slotErrs...)
	hist := sc.checkHistory(all, allPubs)
	sc.mu.Lock()
	sc.result, sc.hist = &res, hist
	sc.mu.Unlock()
	sc.t.Log(faultChannel + ":\n" + tallyTable(res, subs, pubs))
	sc.t.Log(histChannel + " (each client's connections checked as one stream):\n" + hist.table())
	if len(res.violations) > 0 {
		sc.t.Errorf("%s: %d violation(s) of \"every acked publish arrives, or a gap says it may not have\"\n%s",
			sc.name, len(res.violations), sc.failureReport(res.violations))
	}
	if len(hist.violations) > 0 {
		sc.t.Errorf("%s, on %s: %d violation(s) of \"every acked publish arrives, refilled or recovered, or a gap or recovered:false says it may not have\"\n%s",
			sc.name, histChannel, len(hist.violations), sc.failureReport(hist.violations))
	}
}

// onChannel returns the streams of ch.
func onChannel(ch string, subs []*subStream, pubs []*pubStream) ([]*subStream, []*pubStream) {
	var s []*subStream
	var p []*pubStream
	for _, x := range subs {
		if x.ch == ch {
			s = append(s, x)
		}
	}
	for _, x := range pubs {
		if x.ch == ch {
			p = append(p, x)
		}
	}
	return s, p
}

// pubsAnswered holds when no live publisher waits for an answer.
func (sc *scenario) pubsAnswered() (bool, string) {
	_, pubs := sc.tr.streams()
	for _, p := range pubs {
		if p.live() && p.pending() > 0 {
			return false, fmt.Sprintf("%s has %d publishes unanswered", p.name, p.pending())
		}
	}
	return true, ""
}

// subsCaughtUp holds when every live subscriber has received the last
// acked publish of every live publisher.
func (sc *scenario) subsCaughtUp() (bool, string) {
	subs, pubs := sc.tr.streams()
	for _, s := range subs {
		if !s.live() {
			continue
		}
		s.mu.Lock()
		ackAt := s.ackAt
		s.mu.Unlock()
		got := s.lastSeqs()
		for _, p := range pubs {
			if !p.live() || p.ch != s.ch {
				continue
			}
			if last := p.lastAckedAfter(ackAt); got[p.name] < last {
				return false, fmt.Sprintf("%s has %s up to #%d of #%d", s.name, p.name, got[p.name], last)
			}
		}
	}
	return true, ""
}

// failureReport is what someone paged at 3 a.m. reads: what was done
// when, then each violation with the times around it.
func (sc *scenario) failureReport(violations []string) string {
	var b strings.Builder
	b.WriteString("timeline (seconds since the scenario began):\n")
	sc.mu.Lock()
	for _, l := range sc.timeline {
		b.WriteString("  " + l + "\n")
	}
	sc.mu.Unlock()
	fmt.Fprintf(&b, "violations (%d):\n", len(violations))
	for i, v := range violations {
		if i == maxShown {
			fmt.Fprintf(&b, "  ... and %d more\n", len(violations)-maxShown)
			break
		}
		b.WriteString("  - " + v + "\n")
	}
	b.WriteString("Stream names: sub<home>.<k> / pub<home>.<k> is the k-th connection of the client that started on node n<home>; \"on nX\" is the node that connection was to. hsub and hpub are the clients of " + histChannel + "; hsub<home>.1+2 is one client's connections checked as one stream.")
	return b.String()
}

// tallyTable shows every stream: what publishers sent and what
// subscribers received, gaps and missed publishes by cover.
func tallyTable(res checkResult, subs []*subStream, pubs []*pubStream) string {
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "publisher\tnode\tsent\tacked\trefused\tunanswered\tended\t")
	for _, p := range pubs {
		var pt pubTally
		pt.refused = map[int]int{}
		pt.add(p)
		fmt.Fprintf(w, "%s\tn%d\t%d\t%d\t%v\t%d\t%s\t\n", p.name, p.node, pt.attempted, pt.acked, pt.refused, pt.unanswered, endReason(p.endErr, p.byTest))
	}
	fmt.Fprintln(w, "subscriber\tnode\treceived\tgaps\tmissed+gap\tmissed+disconnect\tmissed SILENTLY\t")
	for _, t := range res.subs {
		fmt.Fprintf(w, "%s\tn%d\t%d\t%d\t%d\t%d\t%d\t\n", t.name, t.node, t.received, t.gaps, t.missGap, t.missClose, t.missSilent)
	}
	_ = w.Flush()
	return buf.String()
}

// reportLine is one scenario in the FAULT_REPORT file.
type reportLine struct {
	Scenario    string         `json:"scenario"`
	Result      string         `json:"result"` // pass, fail, skip
	DurationS   float64        `json:"duration_s"`
	Figures     map[string]any `json:"figures"`
	Attempted   int            `json:"publishes_attempted"`
	Acked       int            `json:"publishes_acked"`
	Refused     map[int]int    `json:"publishes_refused"` // by err code
	Unanswered  int            `json:"publishes_unanswered"`
	Delivered   int            `json:"delivered"`
	Upgrade503  int            `json:"upgrades_refused_503"`
	Gaps        map[string]int `json:"gaps_per_subscriber"`
	Silent      int            `json:"missed_silently"`
	Violations  int            `json:"violations"`
	Subscribers int            `json:"subscriber_streams"`
	// History: the same traffic on a channel with history (the fields
	// above are the channel without).
	History *histReport `json:"history,omitempty"`
}

// writeReport logs the scenario's figures and appends them to the file
// named by FAULT_REPORT, if set. It runs last, whatever happened.
func (sc *scenario) writeReport() {
	line := sc.reportLine()
	b, _ := json.Marshal(line)
	sc.t.Logf("report: %s", b)
	path := os.Getenv("FAULT_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		sc.t.Errorf("FAULT_REPORT %s: %v", path, err)
	}
}

func (sc *scenario) reportLine() reportLine {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	l := reportLine{Scenario: sc.name, Result: "pass", DurationS: roundSeconds(time.Since(sc.epoch)),
		Figures: sc.figures, Gaps: map[string]int{}}
	switch {
	case sc.t.Skipped():
		l.Result = "skip"
	case sc.t.Failed():
		l.Result = "fail"
	}
	if sc.tr != nil {
		sc.tr.mu.Lock()
		l.Upgrade503 = sc.tr.upgrade503
		sc.tr.mu.Unlock()
	}
	if r := sc.result; r != nil {
		l.Attempted, l.Acked, l.Refused, l.Unanswered = r.pubs.attempted, r.pubs.acked, r.pubs.refused, r.pubs.unanswered
		l.Delivered, l.Violations, l.Subscribers = r.delivered, len(r.violations), len(r.subs)
		for _, t := range r.subs {
			l.Gaps[t.name] = t.gaps
			l.Silent += t.missSilent
		}
	}
	if sc.hist != nil {
		l.History = sc.hist.report(sc.result, sc.nodeStats)
	}
	return l
}
