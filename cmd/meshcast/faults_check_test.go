//go:build faults

package main

import (
	"fmt"
	"sort"
	"time"
)

// The check, for every subscriber stream S and publisher stream P: every
// publish of P that was acked and sent after S's sub was acked (and before
// S ended) reached S, or S received a gap for the channel after the last
// message of P before it and before the first message of P after it. A
// stream cut by a disconnect covers its own trailing loss. Also: each
// publisher's messages arrive in order, once, and a refused publish
// arrives nowhere (but one refused as "not stored on enough nodes", on a
// channel with history, may arrive, once). A history client's
// connections are checked as one stream (faults_history_test.go).

// subTally is what the check found for one subscriber stream.
type subTally struct {
	name        string
	node        int
	received    int // messages
	gaps        int
	missGap     int // missed publishes covered by a gap
	missClose   int // missed publishes covered by the stream's disconnect
	missSilent  int // missed publishes nobody told it about
	endedByTest bool
}

// pubTally counts one publisher stream's publishes by answer.
type pubTally struct {
	attempted, acked, unanswered int
	refused                      map[int]int // by err code
}

type checkResult struct {
	violations []string
	subs       []subTally
	pubs       pubTally
	delivered  int
}

// recvd is one received message of a publisher: its seq and position in
// the subscriber's event list.
type recvd struct{ seq, pos int }

func checkTraffic(subs []*subStream, pubs []*pubStream, rel func(time.Time) string) checkResult {
	res := checkResult{pubs: pubTally{refused: map[int]int{}}}
	for _, p := range pubs {
		res.pubs.add(p)
		for _, bad := range p.badData {
			res.violations = append(res.violations, fmt.Sprintf("%s (on n%d): %s", p.name, p.node, bad))
		}
	}
	for _, s := range subs {
		tally, problems := checkSub(s, pubs, rel)
		res.subs = append(res.subs, tally)
		res.delivered += tally.received
		res.violations = append(res.violations, problems...)
	}
	return res
}

func (pt *pubTally) add(p *pubStream) {
	pt.attempted += len(p.answer)
	for _, a := range p.answer {
		switch a {
		case ackedPub:
			pt.acked++
		case unanswered:
			pt.unanswered++
		default:
			pt.refused[a]++
		}
	}
}

func checkSub(s *subStream, pubs []*pubStream, rel func(time.Time) string) (subTally, []string) {
	t := subTally{name: s.name, node: s.node, endedByTest: s.byTest}
	var problems []string
	for _, e := range s.events {
		switch {
		case e.seam:
		case e.gap:
			t.gaps++
		default:
			t.received++
		}
	}
	for _, bad := range s.badData {
		problems = append(problems, fmt.Sprintf("%s (on n%d): %s", s.name, s.node, bad))
	}
	if s.ackAt.IsZero() {
		if s.byTest {
			problems = append(problems, fmt.Sprintf("%s (on n%d): its sub was never acked (errs by code: %v)", s.name, s.node, s.subErrs))
		}
		return t, problems
	}
	known := map[string]bool{}
	for _, p := range pubs {
		known[p.name] = true
		problems = append(problems, checkPair(s, p, &t, rel)...)
	}
	for _, e := range s.events {
		if !e.gap && !e.seam && !known[e.pub] {
			problems = append(problems, fmt.Sprintf("%s received a message of %q, a publisher that does not exist", s.name, e.pub))
			break
		}
	}
	return t, problems
}

// checkPair checks what s received of p.
func checkPair(s *subStream, p *pubStream, t *subTally, rel func(time.Time) string) []string {
	recv, problems := orderAndRefusals(s, p)
	sorted := append([]recvd(nil), recv...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].seq < sorted[j].seq })
	got := map[int]bool{}
	for _, r := range recv {
		got[r.seq] = true
	}
	var run *hole
	flush := func() {
		if run != nil {
			problems = append(problems, run.judge(s, p, t, rel)...)
			run = nil
		}
	}
	for seq := 1; seq <= len(p.answer); seq++ {
		sent := p.sentAt[seq-1]
		inA := p.answer[seq-1] == ackedPub && sent.After(s.ackAt) && (s.endAt.IsZero() || sent.Before(s.endAt))
		if !inA || got[seq] {
			continue
		}
		k := sort.Search(len(sorted), func(i int) bool { return sorted[i].seq > seq })
		prev, next := -1, len(s.events)
		if k > 0 {
			prev = sorted[k-1].pos
		}
		if k < len(sorted) {
			next = sorted[k].pos
		}
		if run == nil || run.prev != prev || run.next != next {
			flush()
			run = &hole{prev: prev, next: next, first: seq}
		}
		run.last, run.count = seq, run.count+1
	}
	flush()
	return problems
}

// orderAndRefusals returns p's messages as s received them, and what is
// wrong with them: out of order, duplicated, refused, or never sent.
func orderAndRefusals(s *subStream, p *pubStream) ([]recvd, []string) {
	var recv []recvd
	var problems []string
	seen := map[int]bool{}
	last, dups, reorders := 0, 0, 0
	for pos, e := range s.events {
		if e.gap || e.pub != p.name {
			continue
		}
		recv = append(recv, recvd{e.seq, pos})
		switch {
		case e.seq < 1 || e.seq > len(p.answer):
			problems = append(problems, fmt.Sprintf("%s received %s #%d, which was never sent", s.name, p.name, e.seq))
		case p.answer[e.seq-1] != ackedPub && p.answer[e.seq-1] != unanswered && !p.notStored[e.seq-1]:
			problems = append(problems, fmt.Sprintf("%s received %s #%d, which was refused with err %d (%s): a refused publish must reach no one",
				s.name, p.name, e.seq, p.answer[e.seq-1], p.reasons[p.answer[e.seq-1]]))
		}
		if seen[e.seq] {
			dups++
		} else if e.seq < last {
			reorders++
		}
		seen[e.seq] = true
		last = max(last, e.seq)
	}
	if dups > 0 {
		problems = append(problems, fmt.Sprintf("%s received %d duplicate(s) of %s's messages", s.name, dups, p.name))
	}
	if reorders > 0 {
		problems = append(problems, fmt.Sprintf("%s received %d message(s) of %s out of order", s.name, reorders, p.name))
	}
	return recv, problems
}

// hole is a run of missed publishes of one publisher between the same
// two received messages (positions prev and next in the event list).
type hole struct {
	prev, next         int
	first, last, count int
}

// judge counts the hole as covered by a gap, by the stream's disconnect,
// or as silent, and describes a silent one.
func (h *hole) judge(s *subStream, p *pubStream, t *subTally, rel func(time.Time) string) []string {
	lo := max(h.prev+1, s.ackPos)
	for pos := lo; pos < h.next; pos++ {
		if s.events[pos].gap {
			t.missGap += h.count
			return nil
		}
	}
	if h.next == len(s.events) && s.endErr != nil && !s.byTest {
		t.missClose += h.count
		return nil
	}
	t.missSilent += h.count
	return []string{h.describe(s, p, rel)}
}

func (h *hole) describe(s *subStream, p *pubStream, rel func(time.Time) string) string {
	before := "nothing of it before the hole"
	if h.prev >= 0 {
		e := s.events[h.prev]
		before = fmt.Sprintf("before the hole it received #%d at %s", e.seq, rel(e.at))
	}
	after := "after it nothing more of it, until the stream ended at " + rel(s.endAt) + " (" + endReason(s.endErr, s.byTest) + ")"
	if s.endAt.IsZero() {
		after = "after it nothing more of it"
	}
	if h.next < len(s.events) {
		e := s.events[h.next]
		after = fmt.Sprintf("after it #%d at %s", e.seq, rel(e.at))
	}
	seams := ""
	for pos := max(h.prev+1, 0); pos < h.next; pos++ {
		if s.events[pos].seam {
			seams = fmt.Sprintf("; in between the client reconnected and resumed with recovered:true at %s", rel(s.events[pos].at))
		}
	}
	return fmt.Sprintf("SILENT HOLE: %s (on n%d, sub acked at %s) missed %d acked publish(es) of %s (on n%d): #%d–#%d, sent %s–%s, acked by %s; %s; %s; no gap frame in between (%d gap(s) in the whole stream)%s",
		s.name, s.node, rel(s.ackAt), h.count, p.name, p.node, h.first, h.last,
		rel(p.sentAt[h.first-1]), rel(p.sentAt[h.last-1]), rel(p.answerAt[h.last-1]),
		before, after, countGaps(s), seams)
}

// countGaps counts the gap frames s received (not a spliced stream's
// seams).
func countGaps(s *subStream) int {
	n := 0
	for _, e := range s.events {
		if e.gap && !e.seam {
			n++
		}
	}
	return n
}

func endReason(err error, byTest bool) string {
	switch {
	case byTest:
		return "closed by the test"
	case err == nil:
		return "still connected"
	default:
		return err.Error()
	}
}
