package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Junk is input to the gossip and peer ports that fails before any secret
// is proved: random bytes, another cluster's label, what fails decryption
// or the handshake. Anyone who reaches the ports can send it, UDP packets
// with a spoofed source too, so a log line for each would let them fill
// the disk and bury real errors. It is counted instead, logged at debug,
// and summed up at warn once a minute (junkSummaryEvery) with the number
// of addresses it came from; a misconfigured node (a wrong secret, say)
// shows up there, with its address.

// junkSummaryEvery is how often the junk counts are logged, when not zero.
const junkSummaryEvery = time.Minute

// maxJunkAddrs bounds the addresses remembered per summary.
const maxJunkAddrs = 1024

// junkCounter counts one kind of junk since the last summary.
type junkCounter struct {
	what  string        // "junk gossip packets"
	why   string        // its likely causes, for the summary
	total atomic.Uint64 // ever, for Stats

	// mu guards the counts since the last summary.
	mu     sync.Mutex
	n      uint64
	addrs  map[string]struct{}
	sample string // one address, to name in the summary
}

// add counts one piece of junk from ip ("" when unknown).
func (j *junkCounter) add(ip string) {
	j.total.Add(1)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	if ip == "" {
		return
	}
	if j.addrs == nil {
		j.addrs = make(map[string]struct{})
	}
	if len(j.addrs) < maxJunkAddrs {
		j.addrs[ip] = struct{}{}
	}
	if j.sample == "" {
		j.sample = ip
	}
}

// take returns and resets the counts since the last summary.
func (j *junkCounter) take() (n uint64, addrs int, sample string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n, addrs, sample = j.n, len(j.addrs), j.sample
	j.n, j.addrs, j.sample = 0, nil, ""
	return n, addrs, sample
}

// junkLog is a node's junk counters.
type junkLog struct {
	packets junkCounter // UDP to the gossip port
	streams junkCounter // TCP to the gossip port
	links   junkCounter // TCP to the peer port
}

func newJunkLog() *junkLog {
	j := &junkLog{}
	notOurs := "not meshcast, or a node with a different --secret or --cluster-name"
	j.packets.what, j.packets.why = "junk gossip packets", notOurs
	j.streams.what, j.streams.why = "junk gossip streams", notOurs
	j.links.what = "peer-link connections that failed the handshake or found no slot"
	j.links.why = "not meshcast, a node with a different --secret or --cluster-name, or more handshakes at once than the slots allow"
	return j
}

// summarize logs, at warn, what was counted since the last call.
func (j *junkLog) summarize(log *slog.Logger) {
	for _, c := range []*junkCounter{&j.packets, &j.streams, &j.links} {
		n, addrs, sample := c.take()
		if n == 0 {
			continue
		}
		more := ""
		if addrs >= maxJunkAddrs {
			more = " or more"
		}
		noun := "addresses"
		if addrs == 1 {
			noun = "address"
		}
		log.Warn(fmt.Sprintf("refused %d %s from %d%s %s (%s)", n, c.what, addrs, more, noun, c.why),
			"example_addr", sample, "kind", c.what)
	}
}

// junkLoop logs the summary every junkSummaryEvery until shutdown.
func (c *Cluster) junkLoop() {
	defer c.wg.Done()
	t := time.NewTicker(junkSummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.junk.summarize(c.log)
		}
	}
}

// memberlistJunk says whether a memberlist log line reports junk, and
// which counter it goes to (nil for a follow-up line of junk already
// counted, which is dropped to debug without counting).
func (j *junkLog) memberlistJunk(line string) (c *junkCounter, junk bool) {
	for _, p := range junkPatterns {
		if strings.Contains(line, p.text) {
			switch p.kind {
			case 'p':
				return &j.packets, true
			case 's':
				return &j.streams, true
			}
			return nil, true
		}
	}
	return nil, false
}

// junkPatterns are memberlist's lines about input it refused before any
// key was proved ('p' a packet, 's' a stream, '-' a follow-up). Stream
// patterns come first: some packet texts are contained in them.
var junkPatterns = []struct {
	text string
	kind byte
}{
	{"failed to receive and remove the stream label header", 's'},
	{"unexpected double stream label header", 's'},
	{"discarding stream with unacceptable label", 's'},
	{"failed to receive: ", 's'},
	{"Failed to receive user message", 's'},
	{"Failed to read remote state", 's'},
	{"Failed to decode ping:", 's'},
	{"Received invalid msgType", 's'},
	{"Failed to send error", '-'},
	{"Failed to encode error response", '-'},
	{"cannot decode label", 'p'},
	{"label header cannot be empty", 'p'},
	{"unexpected double packet label header", 'p'},
	{"discarding packet with unacceptable label", 'p'},
	{"Decrypt packet failed", 'p'},
	{"Got invalid checksum for UDP packet", 'p'},
	{"missing message type byte", 'p'},
	{"UDP packet too short", 'p'},
	{") not supported", 'p'},
	{"Failed to decode compound request", 'p'},
	{"Compound request had", 'p'},
	{"Failed to decode ping request", 'p'},
	{"Failed to decode indirect ping request", 'p'},
	{"Failed to decode ack response", 'p'},
	{"Failed to decode nack response", 'p'},
	{"Failed to decode suspect message", 'p'},
	{"Failed to decode alive message", 'p'},
	{"Failed to decode dead message", 'p'},
	{"Failed to decompress payload", 'p'},
	{"Got ping for unexpected node", 'p'},
}

// fromIP is the IP in memberlist's "from=host:port", or "".
func fromIP(line string) string {
	_, rest, ok := strings.Cut(line, "from=")
	if !ok {
		return ""
	}
	addr, _, _ := strings.Cut(rest, " ")
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return ""
}
