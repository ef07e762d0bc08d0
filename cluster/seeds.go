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
