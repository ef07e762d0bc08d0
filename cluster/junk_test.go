package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture is a slog.Handler that keeps every record.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// since returns the messages logged at level or above from record i on.
func (l *logCapture) since(i int, level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records[min(i, len(l.records)):] {
		if r.Level >= level {
			out = append(out, r.Level.String()+" "+r.Message)
		}
	}
	return out
}

func (l *logCapture) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// junkInputs sends n junk UDP packets and n junk TCP streams to the
// gossip port and n junk connections to the peer port: random bytes, and
// the cluster's label followed by random bytes (it fails decryption).
func junkInputs(t *testing.T, a *node, n int) {
	t.Helper()
	gossip, peer := a.gossipAddr(), fmt.Sprintf("127.0.0.1:%d", a.PeerPort())
	udp, err := net.Dial("udp", gossip)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for i := range n {
		junk := make([]byte, 64)
		rand.Read(junk)
		if i%2 == 1 {
			junk = append([]byte{244, byte(len("meshcast"))}, append([]byte("meshcast"), junk...)...)
		}
		udp.Write(junk)
		for _, addr := range []string{gossip, peer} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(junk)
			conn.(*net.TCPConn).CloseWrite()
			expectClosed(t, conn)
			conn.Close()
		}
	}
}

// TestJunkIsNotLoggedOneLineEach: junk on the gossip and peer ports is
// counted, not logged a line at a time at info or above (anyone can send
// it, spoofed, to fill the disk and bury real errors).
func TestJunkIsNotLoggedOneLineEach(t *testing.T) {
	logs := &logCapture{}
	cfg := testConfig("a")
	cfg.Logger = slog.New(logs)
	a := startNode(t, cfg)
	mark := logs.len()
	junkInputs(t, a, 40)
	waitFor(t, 10*time.Second, "the junk counted", func() bool {
		s := a.Stats()
		return s.HandshakeFailures == 40 && s.JunkGossipPackets == 40 && s.JunkGossipStreams == 40
	})
	if lines := logs.since(mark, slog.LevelInfo); len(lines) > 0 {
		t.Fatalf("%d lines logged for junk, e.g.:\n%s", len(lines), strings.Join(lines[:min(5, len(lines))], "\n"))
	}
	// The summary: one line per kind, at warn, then nothing until more.
	mark = logs.len()
	a.junk.summarize(a.log)
	const notOurs = " (not meshcast, or a node with a different --secret or --cluster-name)"
	want := []string{
		"WARN refused 40 junk gossip packets from 1 address" + notOurs,
		"WARN refused 40 junk gossip streams from 1 address" + notOurs,
		"WARN refused 40 peer-link connections that failed the handshake or found no slot from 1 address" +
			" (not meshcast, a node with a different --secret or --cluster-name, or more handshakes at once than the slots allow)",
	}
	if got := logs.since(mark, slog.LevelInfo); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mark = logs.len()
	a.junk.summarize(a.log)
	if got := logs.since(mark, slog.LevelDebug); len(got) != 0 {
		t.Fatalf("a summary with nothing new: %v", got)
	}
}

// TestJoinRefusedForConfigSaysSo: a node whose secret or cluster name
// differs from its seed's is told, at its join timeout, what probably
// differs, on one line (memberlist's join error is a multi-line list
// ending in a bare EOF).
func TestJoinRefusedForConfigSaysSo(t *testing.T) {
	seed := startNode(t, testConfig("seed"))
	for name, adjust := range map[string]func(*Config){
		"other secret":       func(c *Config) { c.Secret = []byte("another test secret") },
		"no secret":          func(c *Config) { c.Secret = nil },
		"other cluster name": func(c *Config) { c.ClusterName = "other" },
	} {
		t.Run(name, func(t *testing.T) {
			logs := &logCapture{}
			cfg := testConfig("joiner")
			cfg.Join = []string{seed.gossipAddr()}
			cfg.JoinTimeout = time.Second
			cfg.Logger = slog.New(logs)
			adjust(&cfg)
			startNode(t, cfg)
			var lastErr string
			waitFor(t, 20*time.Second, "the join timeout's error", func() bool {
				lastErr = logs.attr(slog.LevelError, "could not join any seed", "last_err")
				return lastErr != ""
			})
			if !strings.Contains(lastErr, "does it have the same --secret and --cluster-name") || strings.Contains(lastErr, "\n") {
				t.Fatalf("last_err %q: want one line with the hint", lastErr)
			}
			t.Logf("last_err: %s", lastErr)
		})
	}
}

// attr returns the value of key in the first record at level whose
// message starts with msg, or "".
func (l *logCapture) attr(level slog.Level, msg, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Level != level || !strings.HasPrefix(r.Message, msg) {
			continue
		}
		val := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				val = a.Value.String()
				return false
			}
			return true
		})
		return val
	}
	return ""
}

// matching returns the messages logged at exactly level that contain s.
func (l *logCapture) matching(level slog.Level, s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level == level && strings.Contains(r.Message, s) {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestJoinRetriesAreNotLoggedEach: a node whose seeds refuse it (here two
// seeds with another secret) retries several times a second until its
// join timeout; it logs the first failure at info and the outcome at
// error, the retries at debug, and the hint about the secret once per
// line, not once per seed.
func TestJoinRetriesAreNotLoggedEach(t *testing.T) {
	seed1 := startNode(t, testConfig("seed1"))
	cfg := testConfig("seed2")
	cfg.Join = []string{seed1.gossipAddr()}
	seed2 := startNode(t, cfg)
	logs := &logCapture{}
	cfg = testConfig("joiner")
	cfg.Secret = []byte("another test secret")
	cfg.Join = []string{seed1.gossipAddr(), seed2.gossipAddr()}
	cfg.JoinTimeout = 2 * time.Second
	cfg.Logger = slog.New(logs)
	startNode(t, cfg)
	var lastErr string
	waitFor(t, 20*time.Second, "the join timeout's error", func() bool {
		lastErr = logs.attr(slog.LevelError, "could not join any seed", "last_err")
		return lastErr != ""
	})
	if got := logs.matching(slog.LevelInfo, "no seed could be joined yet"); len(got) != 1 {
		t.Fatalf("%d lines at info, want the first failure only", len(got))
	}
	if retries := logs.matching(slog.LevelDebug, "no seed could be joined yet"); len(retries) < 2 {
		t.Fatalf("%d retries logged at debug: the test did not retry", len(retries))
	}
	if n := strings.Count(lastErr, "--cluster-name"); n != 1 {
		t.Fatalf("the hint %d times in %q", n, lastErr)
	}
	if n := strings.Count(lastErr, "(closed unanswered)"); n != 2 {
		t.Fatalf("want each seed marked: %q", lastErr)
	}
}

// TestRefusedNodeDoesNotServeAlone: a node its seed refuses (another
// secret) is not a member: past its join timeout it does not serve on its
// own, a second cluster acking publishes the first never sees, as one
// whose seeds are all down does (TestReadinessIsEarned). It stays joining
// and says why, at error and in its standing.
func TestRefusedNodeDoesNotServeAlone(t *testing.T) {
	seed := startNode(t, testConfig("seed"))
	logs := &logCapture{}
	cfg := testConfig("stranger")
	cfg.Secret = []byte("another test secret")
	cfg.Join = []string{seed.gossipAddr()}
	cfg.JoinTimeout = time.Second
	cfg.Logger = slog.New(logs)
	n := startNode(t, cfg)
	waitFor(t, 20*time.Second, "the join timeout's error", func() bool {
		return logs.attr(slog.LevelError, "could not join any seed", "last_err") != ""
	})
	retries := len(logs.matching(slog.LevelDebug, "no seed could be joined yet"))
	waitFor(t, 10*time.Second, "more attempts after the join timeout", func() bool {
		return len(logs.matching(slog.LevelDebug, "no seed could be joined yet")) > retries
	})
	err := n.standing()
	if !errors.Is(err, ErrJoining) || !strings.Contains(err.Error(), "refused by a seed") {
		t.Fatalf("standing past the join timeout: %v, want joining, refused by a seed", err)
	}
	if got := logs.matching(slog.LevelError, "could not join any seed"); len(got) != 1 || !strings.Contains(got[0], "not serving on its own") {
		t.Fatalf("errors: %q", got)
	}
}

// all returns a copy of the records so far.
func (l *logCapture) all() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}
