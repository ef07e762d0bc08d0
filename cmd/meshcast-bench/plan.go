package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// connConfig is what every scenario needs to open connections.
type connConfig struct {
	URLs        []string
	Proto       string
	PerWorker   int // connections per worker process
	Workers     int // 0: derived from PerWorker
	DialConc    int
	DialTimeout time.Duration
	AckTimeout  time.Duration
	Timeout     time.Duration // hard limit of the whole run; 0: derived
	Quiet       bool          // no progress line
	Reader      string        // subscribers' reader: "goroutine" or readerEpoll
	Arrival     string        // arrivalKernel, or "read"
	ReaderIdle  bool          // poll loops under SCHED_IDLE
}

func parseURLs(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("bad url %q: %w", u, err)
		}
		if p.Scheme != "ws" && p.Scheme != "wss" {
			return nil, fmt.Errorf("bad url %q: scheme must be ws or wss", u)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no urls")
	}
	return out, nil
}

// share is one worker's contiguous slice of a global index range.
type share struct{ first, count int }

// split divides n items as evenly as possible over k workers.
func split(n, k int) []share {
	out := make([]share, k)
	first := 0
	for i := range k {
		c := n / k
		if i < n%k {
			c++
		}
		out[i] = share{first, c}
		first += c
	}
	return out
}

// workerCount is at least min, and enough that no worker holds more than
// perWorker connections (one process may open at most 20,000 files).
func workerCount(conns, perWorker, minimum, forced int) int {
	if forced > 0 {
		return forced
	}
	if perWorker <= 0 {
		perWorker = 5000
	}
	return max(minimum, (conns+perWorker-1)/perWorker)
}

// baseSetup fills the connection fields of a setup command.
func (cc connConfig) baseSetup(conns int) setupCmd {
	return setupCmd{
		Proto: cc.Proto, URLs: cc.URLs,
		PerDest:     (conns + len(cc.URLs) - 1) / len(cc.URLs),
		ReadBuf:     16 << 10,
		DialConc:    cc.DialConc,
		DialTimeout: cc.DialTimeout.Milliseconds(),
		AckTimeout:  cc.AckTimeout.Milliseconds(),
		Reader:      cc.Reader,
		Arrival:     cc.Arrival,
		ReaderIdle:  cc.ReaderIdle,
	}
}
