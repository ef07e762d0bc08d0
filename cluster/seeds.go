package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// defaultGossipPort completes a seed given without a port.
const defaultGossipPort = 7946

// lookupFunc resolves a host name to addresses (net.Resolver.LookupHost).
type lookupFunc func(ctx context.Context, host string) ([]string, error)

// expandSeeds turns seeds into "ip:port" addresses: a name resolving to
// several addresses (a Kubernetes headless Service) yields all of them.
// Seeds that do not resolve are reported; the others are still returned.
func expandSeeds(ctx context.Context, lookup lookupFunc, seeds []string) ([]string, error) {
	var out []string
	var errs []error
	seen := make(map[string]bool)
	for _, s := range seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil { // no port: memberlist's default
			host, port = s, strconv.Itoa(defaultGossipPort)
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			if ips, err = lookup(ctx, host); err != nil {
				errs = append(errs, fmt.Errorf("resolve seed %q: %w", s, err))
				continue
			}
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out, errors.Join(errs...)
}

// joinLoop joins the seeds in the background, retrying with jittered
// backoff until a join reaches another node or another node reaches us.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	b := newBackoff(200*time.Millisecond, 5*time.Second)
	for {
		if c.tryJoin() {
			return
		}
		t := time.NewTimer(b.next())
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// tryJoin makes one join attempt and reports whether we are joined.
func (c *Cluster) tryJoin() bool {
	ml := c.ml.Load()
	if ml.NumMembers() > 1 {
		return true // someone joined us
	}
	addrs, err := expandSeeds(c.ctx, net.DefaultResolver.LookupHost, c.cfg.Join)
	if err != nil {
		c.log.Warn("some join seeds do not resolve", "err", err)
	}
	self := net.JoinHostPort(c.advertiseHost, strconv.Itoa(c.gossipPort))
	var others []string
	for _, a := range addrs {
		if a != self { // a headless Service lists this pod too
			others = append(others, a)
		}
	}
	if len(others) == 0 {
		return false
	}
	n, err := ml.Join(others)
	if n > 0 {
		c.log.Info("joined cluster", "contacted", n, "members", ml.NumMembers())
		return true
	}
	c.log.Info("join failed; retrying", "seeds", others, "err", err)
	return false
}

// backoff is jittered exponential backoff: each delay is uniform in
// [d/2, d] and d doubles up to max, so restarted nodes do not retry in step.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max, cur: min} }

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.cur = b.min }
