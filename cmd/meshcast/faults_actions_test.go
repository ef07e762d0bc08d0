//go:build faults

package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Reconnect policies: where a client whose node went away reconnects.
func reconnectHome(home int) int { return home }
func reconnectToN0(int) int      { return 0 }

// startTraffic starts a subscriber and then a publisher on every node,
// on each channel (without history and with it), and waits until every
// subscriber gets every publisher's messages.
func (sc *scenario) startTraffic(reconnect func(home int) int) {
	sc.t.Helper()
	sc.tr = newTraffic(func(i int) string { return "ws://" + sc.nodes[i].httpAddr + "/ws" }, reconnect)
	for i := range sc.nodes {
		sc.tr.startSlot(plainSub, i)
		sc.tr.startSlot(histSub, i)
	}
	sc.mustPoll("every subscriber acked", startDeadline, 20*time.Millisecond, sc.subsAcked)
	for i := range sc.nodes {
		sc.tr.startSlot(plainPub, i)
		sc.tr.startSlot(histPub, i)
	}
	sc.mustPoll("every publisher connected", startDeadline, 20*time.Millisecond, sc.pubsConnected)
	sc.mustPoll("every subscriber receiving every publisher (100 messages each)", startDeadline, 50*time.Millisecond,
		func() (bool, string) { return sc.flowing(time.Time{}, 100) })
	sc.note("traffic flowing on %s and %s: %d publishers at %d msg/s each and %d subscribers on each",
		faultChannel, histChannel, len(sc.nodes), int(time.Second/publishEvery), len(sc.nodes))
}

// slots is how many clients of each role run: one per node and channel.
func (sc *scenario) slots() int { return 2 * len(sc.nodes) }

func (sc *scenario) pubsConnected() (bool, string) {
	_, pubs := sc.tr.streams()
	if len(pubs) < sc.slots() {
		return false, fmt.Sprintf("%d of %d publishers connected", len(pubs), sc.slots())
	}
	for _, p := range pubs {
		if !p.live() {
			return false, p.name + " disconnected"
		}
	}
	return true, ""
}

func (sc *scenario) subsAcked() (bool, string) {
	subs, _ := sc.tr.streams()
	if len(subs) < sc.slots() {
		return false, fmt.Sprintf("%d of %d subscribers connected", len(subs), sc.slots())
	}
	for _, s := range subs {
		if !s.live() {
			return false, s.name + " not acked"
		}
	}
	return true, ""
}

// flowing holds when every live subscriber has n messages sent since
// `since` from every live publisher of its channel.
func (sc *scenario) flowing(since time.Time, n int) (bool, string) {
	subs, pubs := sc.tr.streams()
	for _, s := range subs {
		if !s.live() {
			continue
		}
		for _, p := range pubs {
			if !p.live() || p.ch != s.ch {
				continue
			}
			if got := s.countFrom(p.name, since); got < n {
				return false, fmt.Sprintf("%s has %d of %d messages of %s", s.name, got, n, p.name)
			}
		}
	}
	return true, ""
}

// hold lets a fault last d: the duration is the scenario, not a wait for
// a condition.
func (sc *scenario) hold(d time.Duration, what string) {
	sc.note("%s for %v", what, d)
	time.Sleep(d)
}

// holdWatching lets a fault on n last d from its start, watching n's
// /readyz: the figure is how long n took to stop saying ready.
func (sc *scenario) holdWatching(n *faultNode, start time.Time, d time.Duration) {
	sc.note("%s cut off for %v; watching its /readyz", n, d)
	var said string
	took, ok, _ := poll(start, d, 100*time.Millisecond, func() (bool, string) {
		ready, why := sc.ready(n)
		said = why
		return !ready, why
	})
	if ok {
		sc.note("%s not ready: %s", n, said)
		sc.figure("not_ready_after_cut_s_"+n.name, took)
	} else {
		sc.note("%s said ready throughout the partition", n)
	}
	time.Sleep(time.Until(start.Add(d))) // the rest of the fault
}

// keepTraffic runs the traffic d longer after recovery, so late gaps
// arrive before the check.
func (sc *scenario) keepTraffic(d time.Duration) { sc.hold(d, "traffic continues") }

func (sc *scenario) kill9(n *faultNode) time.Time {
	sc.t.Helper()
	sc.keepNodeStats(n)
	at := time.Now()
	if err := n.signalAndWait(syscall.SIGKILL, 10*time.Second); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("kill -9 %s", n)
	return at
}

func (sc *scenario) freeze(n *faultNode) time.Time {
	sc.t.Helper()
	at := time.Now()
	if err := n.signal(syscall.SIGSTOP); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("SIGSTOP %s", n)
	return at
}

func (sc *scenario) thaw(n *faultNode) time.Time {
	sc.t.Helper()
	if err := n.signal(syscall.SIGCONT); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("SIGCONT %s", n)
	return time.Now()
}

// term stops n gracefully (SIGTERM), waits for it to exit, and checks
// its subscribers were closed with 1001.
func (sc *scenario) term(n *faultNode) {
	sc.t.Helper()
	var subs []*subStream
	all, _ := sc.tr.streams()
	for _, s := range all {
		if s.node == n.index && s.live() {
			subs = append(subs, s)
		}
	}
	sc.keepNodeStats(n)
	sc.note("SIGTERM %s", n)
	if err := n.signalAndWait(syscall.SIGTERM, 30*time.Second); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("%s exited", n)
	for _, s := range subs {
		sc.checkGoingAway(s)
	}
}

// checkGoingAway checks s, on a node that got SIGTERM, was closed with
// 1001 "going away".
func (sc *scenario) checkGoingAway(s *subStream) {
	sc.t.Helper()
	poll(time.Now(), 10*time.Second, 20*time.Millisecond, func() (bool, string) { return !s.live(), "" })
	s.mu.Lock()
	err := s.endErr
	s.mu.Unlock()
	var ce *closeError
	if !errors.As(err, &ce) || ce.code != 1001 {
		sc.t.Errorf("%s: its node got SIGTERM; the connection ended with %v, want close 1001", s.name, err)
	}
}

func (sc *scenario) partition(n *faultNode) time.Time {
	sc.t.Helper()
	at := time.Now()
	if err := sc.lab.partition(n.index); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("partition: %s cut off the cluster network (its clients stay connected)", n)
	return at
}

// refusalFigures report, for the publishes sent to n during [from, to),
// how many were acked and when the first was refused, for each channel
// (hist_ prefixes the history channel's). Call it after finish: every
// answer is in.
func (sc *scenario) refusalFigures(n *faultNode, from, to time.Time) {
	sc.refusalFiguresOn(faultChannel, "", n, from, to)
	sc.refusalFiguresOn(histChannel, "hist_", n, from, to)
}

func (sc *scenario) refusalFiguresOn(ch, prefix string, n *faultNode, from, to time.Time) {
	_, pubs := sc.tr.streams()
	acked, first := 0, time.Time{}
	for _, p := range pubs {
		if p.ch != ch {
			continue
		}
		p.mu.Lock()
		for i, a := range p.answer {
			if p.sentAt[i].Before(from) || !p.sentAt[i].Before(to) {
				continue
			}
			if a == ackedPub && p.node == n.index {
				acked++
			}
			if a != ackedPub && a != unanswered && p.node == n.index && (first.IsZero() || p.answerAt[i].Before(first)) {
				first = p.answerAt[i]
			}
		}
		p.mu.Unlock()
	}
	sc.figure(prefix+"acked_on_"+n.name+"_during_fault", acked)
	if !first.IsZero() {
		sc.figure(prefix+"first_refusal_on_"+n.name+"_after_fault_start_s", first.Sub(from))
	}
}

func (sc *scenario) heal(n *faultNode) time.Time {
	sc.t.Helper()
	if err := sc.lab.heal(n.index); err != nil {
		sc.t.Fatal(err)
	}
	sc.note("network back for %s", n)
	return time.Now()
}

// restart starts n again under the same name and ports, joining join,
// measures the time from its start until /readyz says 200, and returns
// the start time.
func (sc *scenario) restart(n, join *faultNode) time.Time {
	sc.t.Helper()
	inc, err := n.start(join.gossip)
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.note("restarted %s (joining %s)", n, join)
	took, ok, why := poll(inc.startAt, startDeadline, 20*time.Millisecond, func() (bool, string) { return sc.ready(n) })
	if !ok {
		sc.t.Errorf("%s restarted: /readyz not 200 within %v of its start: %s", n, startDeadline, why)
		return inc.startAt
	}
	sc.note("%s ready (/readyz 200) %.2fs after its start", n, took.Seconds())
	sc.checkReadyMeansJoined(n, took)
	sc.figure("ready_after_start_s_"+n.name, took)
	if took > readyTarget {
		sc.t.Errorf("%s restarted: ready %.2fs after its start; the target is ≤ %v", n, took.Seconds(), readyTarget)
	}
	return inc.startAt
}

// checkReadyMeansJoined: a node that says ready has joined and synced its
// peer links, so just after its first 200 it lists every running node
// alive with both links up (state only improves from there).
func (sc *scenario) checkReadyMeansJoined(n *faultNode, took time.Duration) {
	sc.t.Helper()
	v, err := sc.view(n)
	if err != nil {
		sc.t.Errorf("%s: /api/cluster after ready: %v", n, err)
		return
	}
	for _, other := range sc.nodes {
		if other == n || other.current() == nil || !other.current().running() {
			continue
		}
		if st := v.memberState(other.name); st != "alive" || !v.linkUp(other.name) {
			sc.t.Errorf("%s said ready (/readyz 200) %.2fs after its start, but right after it listed %s as member %s, links %s: a ready node has joined and synced its peer links",
				n, took.Seconds(), other, st, v.linkState(other.name))
		}
	}
}

// awaitDeath measures the time from the kill until every survivor lists
// victim as dead, with no link to it.
func (sc *scenario) awaitDeath(victim *faultNode, killedAt time.Time) {
	sc.t.Helper()
	took, ok, why := poll(killedAt, convergeDeadline, 100*time.Millisecond, func() (bool, string) { return sc.victimGone(victim) })
	if !ok {
		sc.t.Errorf("survivors still see %s %.1fs after kill -9: %s", victim, took.Seconds(), why)
		return
	}
	sc.note("every survivor lists %s dead, no link to it", victim)
	sc.figure("dead_detected_s", took)
}

// awaitHeal measures the time from since until every node lists every
// other as alive, then waits for every link; target 0 asserts nothing.
func (sc *scenario) awaitHeal(since time.Time, key string, target time.Duration) {
	sc.t.Helper()
	took, ok, why := poll(since, convergeDeadline, 100*time.Millisecond, sc.allAlive)
	if !ok {
		sc.t.Errorf("%s: the cluster did not converge: %.1fs after the fault ended not every node lists every other alive: %s", key, took.Seconds(), why)
		return
	}
	sc.note("every node lists every other alive")
	sc.figure(key, took)
	if target > 0 && took > target {
		sc.t.Errorf("%s: every node listed every other alive %.2fs after the fault ended; the target is ≤ %v", key, took.Seconds(), target)
	}
	took, ok, why = poll(since, convergeDeadline, 100*time.Millisecond, sc.meshUp)
	if !ok {
		sc.t.Errorf("%s: members alive but links not all up %.1fs after the fault ended: %s", key, took.Seconds(), why)
		return
	}
	sc.figure(strings.TrimSuffix(key, "_s")+"_links_up_s", took)
}

// awaitReconnected waits until the clients of home have a live stream
// again (a reconnection: not their first) on each channel: a subscriber
// with its ack, a publisher with an answer.
func (sc *scenario) awaitReconnected(home int) {
	sc.t.Helper()
	_, ok, why := poll(time.Now(), startDeadline, 50*time.Millisecond, func() (bool, string) {
		subs, pubs := sc.tr.streams()
		var whyNot []string
		for _, ch := range []string{faultChannel, histChannel} {
			sub, pub := false, false
			for _, s := range subs {
				sub = sub || (s.ch == ch && s.home == home && s.gen > 1 && s.live())
			}
			for _, p := range pubs {
				pub = pub || (p.ch == ch && p.home == home && p.gen > 1 && p.live() && p.answeredAny())
			}
			if !sub || !pub {
				whyNot = append(whyNot, fmt.Sprintf("%s: subscriber back: %v, publisher answered: %v", ch, sub, pub))
			}
		}
		return len(whyNot) == 0, strings.Join(whyNot, "; ")
	})
	if !ok {
		sc.t.Errorf("the clients of n%d did not get going again within %v: %s", home, startDeadline, why)
		return
	}
	sc.note("clients of n%d connected and subscribed again", home)
}
