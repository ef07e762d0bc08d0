//go:build faults

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// poll calls cond every interval until it holds or timeout passes, and
// returns how long that took (from start), whether it held, and cond's
// last explanation of why not.
func poll(start time.Time, timeout, interval time.Duration, cond func() (bool, string)) (time.Duration, bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return time.Since(start), true, ""
		}
		if time.Now().After(deadline) {
			return time.Since(start), false, why
		}
		time.Sleep(interval) // polling pace; the condition is what is waited for
	}
}

// clusterView is a node's GET /api/cluster.
type clusterView struct {
	Standing string `json:"standing"`
	Members  []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"members"`
	Links []struct {
		Peer      string `json:"peer"`
		State     string `json:"state"`
		InboundUp bool   `json:"inbound_up"`
	} `json:"links"`
}

func (v clusterView) memberState(name string) string {
	for _, m := range v.Members {
		if m.Name == name {
			return m.State
		}
	}
	return "absent"
}

// linkState describes the links with peer: "out=up in=up", or "none".
func (v clusterView) linkState(peer string) string {
	for _, l := range v.Links {
		if l.Peer == peer {
			return fmt.Sprintf("out=%s in=%v", l.State, l.InboundUp)
		}
	}
	return "none"
}

func (v clusterView) linkUp(peer string) bool { return v.linkState(peer) == "out=up in=true" }

// linkedTo reports whether either link with peer is up.
func (v clusterView) linkedTo(peer string) bool {
	for _, l := range v.Links {
		if l.Peer == peer && (l.State == "up" || l.InboundUp) {
			return true
		}
	}
	return false
}

// httpGet fetches url with a short timeout: a frozen node must not hold a
// poll up.
func httpGet(client *http.Client, url string) (int, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func newPollClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func (sc *scenario) view(n *faultNode) (clusterView, error) {
	var v clusterView
	status, b, err := httpGet(sc.http, "http://"+n.httpAddr+"/api/cluster")
	if err != nil {
		return v, err
	}
	if status != 200 {
		return v, fmt.Errorf("/api/cluster: %d %s", status, b)
	}
	return v, json.Unmarshal(b, &v)
}

// ready reports whether n's /readyz answers 200, and what it says if not.
func (sc *scenario) ready(n *faultNode) (bool, string) {
	status, b, err := httpGet(sc.http, "http://"+n.httpAddr+"/readyz")
	if err != nil {
		return false, fmt.Sprintf("%s /readyz: %v", n, err)
	}
	return status == 200, fmt.Sprintf("%s /readyz: %d %s", n, status, b)
}

// allAlive holds when every node lists every other as alive.
func (sc *scenario) allAlive() (bool, string) {
	return sc.everyPair(func(v clusterView, other *faultNode) (bool, string) {
		st := v.memberState(other.name)
		return st == "alive", "member " + st
	})
}

// meshUp holds when every node lists every other as alive with both links
// up.
func (sc *scenario) meshUp() (bool, string) {
	return sc.everyPair(func(v clusterView, other *faultNode) (bool, string) {
		st := v.memberState(other.name)
		return st == "alive" && v.linkUp(other.name), "member " + st + ", links " + v.linkState(other.name)
	})
}

func (sc *scenario) everyPair(ok func(v clusterView, other *faultNode) (bool, string)) (bool, string) {
	for _, n := range sc.nodes {
		v, err := sc.view(n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n, err)
		}
		for _, other := range sc.nodes {
			if other == n {
				continue
			}
			if good, why := ok(v, other); !good {
				return false, fmt.Sprintf("%s sees %s: %s", n, other, why)
			}
		}
	}
	return true, ""
}

// victimGone holds when every survivor lists victim as dead with no link
// to it in either direction.
func (sc *scenario) victimGone(victim *faultNode) (bool, string) {
	for _, n := range sc.nodes {
		if n == victim {
			continue
		}
		v, err := sc.view(n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n, err)
		}
		st, link := v.memberState(victim.name), v.linkState(victim.name)
		if st != "dead" || v.linkedTo(victim.name) {
			return false, fmt.Sprintf("%s sees %s: member %s, links %s", n, victim, st, link)
		}
	}
	return true, ""
}
