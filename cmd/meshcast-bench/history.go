package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/meshcast/meshcast/client"
)

// The history scenario (issue 11) starts its own 3-node cluster with
// history on the "bench" namespace and measures two things:
//
//   - publish-to-ack latency under light load, on a channel with history
//     (acked once a second node holds the publish) and, alternately, on one
//     without, with the project's Go client;
//   - recovery: N clients of one node read the first messages of a
//     channel, the node is killed with -9, M more messages are published,
//     and every client reconnects to a surviving node with "since": the
//     time from its reconnect to its ack, having received exactly the M
//     missed messages, recovered:true.

type historyConfig struct {
	Bin         string
	BasePort    int
	Rate        float64
	Duration    time.Duration
	Size        int
	Clients     int
	Missed      int
	MemMsgs     int
	Subs        int
	JSON, Quiet bool
}

type historyReport struct {
	Ack struct {
		History latencySummary `json:"history"`
		Plain   latencySummary `json:"plain"`
	} `json:"publishToAck"`
	Recovery struct {
		Clients    int            `json:"clients"`
		Missed     int            `json:"missedEach"`
		Complete   int            `json:"complete"` // got exactly the missed messages and recovered:true
		Partial    int            `json:"partial"`  // recovered:false or wrong messages
		Failed     int            `json:"failed"`
		AllDoneSec float64        `json:"allDoneSeconds"` // from the first reconnect to the last ack
		PerClient  latencySummary `json:"perClient"`      // reconnect to ack
		PubErrors  int            `json:"publishErrors"`
		// FirstProblem describes the first client that did not complete.
		FirstProblem string `json:"firstProblem,omitempty"`
	} `json:"recovery"`
	Memory struct {
		Messages      int     `json:"messages"` // held by the node at the end
		RSSBeforeKiB  int64   `json:"rssBeforeKiB"`
		RSSAfterKiB   int64   `json:"rssAfterKiB"`
		BytesPerMsg   float64 `json:"rssBytesPerMessage"`
		CountedPerMsg float64 `json:"countedBytesPerMessage"` // as the store counts it against --history-memory
	} `json:"memory,omitempty"`
}

type latencySummary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50ms"`
	P99 float64 `json:"p99ms"`
	Max float64 `json:"maxms"`
}

func summarize(d []time.Duration) latencySummary {
	if len(d) == 0 {
		return latencySummary{}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return latencySummary{N: len(d), P50: ms(q(0.50)), P99: ms(q(0.99)), Max: ms(d[len(d)-1])}
}

func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg historyConfig
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Bin, "meshcast-bin", "", "meshcast binary (built from this module when empty)")
	fs.IntVar(&cfg.BasePort, "base-port", 29080, "node i: HTTP base+i, gossip base+100+2i, peer links base+101+2i")
	fs.Float64Var(&cfg.Rate, "rate", 60, "publish-to-ack: publishes/s in total (light load), alternating the two channels")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "publish-to-ack: how long")
	fs.IntVar(&cfg.Size, "size", 100, "payload bytes")
	fs.IntVar(&cfg.Subs, "subs", 30, "publish-to-ack: subscribers of each channel, spread over the nodes")
	fs.IntVar(&cfg.Clients, "clients", 1000, "recovery: clients of the killed node")
	fs.IntVar(&cfg.Missed, "missed", 100, "recovery: messages each misses while its node is down")
	fs.IntVar(&cfg.MemMsgs, "mem-messages", 1000000, "memory: messages stored on one node (1,000 channels, window 1,000) to measure its RSS per message; 0 skips it")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Bin == "" {
		root, err := moduleRoot(".")
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "meshcast-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if cfg.Bin, err = buildMeshcast(ctx, root, dir, stderr); err != nil {
			return err
		}
	}
	progress := func(format string, a ...any) {
		if !cfg.Quiet {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	cl, err := startMeshcast(ctx, meshcastOpts{Bin: cfg.Bin, BasePort: cfg.BasePort,
		Extra: []string{"--namespace", "bench:history=1000", "--insecure"}}, 3, stderr)
	if err != nil {
		return err
	}
	defer cl.Stop()

	var rep historyReport
	progress("publish-to-ack: %.0f/s for %v, alternating bench:lat (history) and lat (none)", cfg.Rate, cfg.Duration)
	if err := ackLatency(ctx, cl, cfg, &rep); err != nil {
		return err
	}
	progress("recovery: %d clients on node 2, kill -9, %d missed each, reconnect with since", cfg.Clients, cfg.Missed)
	if err := recoveryRun(ctx, cl, cfg, &rep); err != nil {
		return err
	}
	cl.Stop()
	if cfg.MemMsgs > 0 {
		progress("memory: %d messages of %d B stored on one node", cfg.MemMsgs, cfg.Size)
		if err := memoryRun(ctx, cfg, &rep); err != nil {
			return err
		}
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "publish-to-ack, 3 nodes, %.0f publishes/s, %d B, %d subscribers per channel:\n", cfg.Rate, cfg.Size, cfg.Subs)
	fmt.Fprintf(stdout, "  %-22s %6s %8s %8s %8s\n", "channel", "n", "p50 ms", "p99 ms", "max ms")
	for _, r := range []struct {
		name string
		s    latencySummary
	}{{"with history (2 copies)", rep.Ack.History}, {"without history", rep.Ack.Plain}} {
		fmt.Fprintf(stdout, "  %-22s %6d %8.2f %8.2f %8.2f\n", r.name, r.s.N, r.s.P50, r.s.P99, r.s.Max)
	}
	r := rep.Recovery
	fmt.Fprintf(stdout, "recovery: %d clients of a killed node, %d missed messages each, %d publish errors\n", r.Clients, r.Missed, r.PubErrors)
	fmt.Fprintf(stdout, "  complete %d, partial %d, failed %d; all done %.2f s after the first reconnect\n", r.Complete, r.Partial, r.Failed, r.AllDoneSec)
	if r.FirstProblem != "" {
		fmt.Fprintf(stdout, "  first problem: %s\n", r.FirstProblem)
	}
	fmt.Fprintf(stdout, "  per client, reconnect to ack: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.PerClient.P50, r.PerClient.P99, r.PerClient.Max)
	if m := rep.Memory; m.Messages > 0 {
		fmt.Fprintf(stdout, "memory: %d messages of %d B held by one node: RSS %d -> %d KiB, %.0f B per message (%.0f B counted against --history-memory)\n",
			m.Messages, cfg.Size, m.RSSBeforeKiB, m.RSSAfterKiB, m.BytesPerMsg, m.CountedPerMsg)
	}
	return nil
}

// memoryRun publishes cfg.MemMsgs messages over 1,000 channels with a
// window of 1,000 to a node of its own and reads its RSS before and after.
func memoryRun(ctx context.Context, cfg historyConfig, rep *historyReport) error {
	mem := max(2048, cfg.MemMsgs*(cfg.Size+200)>>20)
	cl, err := startMeshcast(ctx, meshcastOpts{Bin: cfg.Bin, BasePort: cfg.BasePort + 50,
		Extra: []string{"--namespace", "mem:history=1000", "--insecure", "--history-memory", fmt.Sprint(mem)}}, 1, io.Discard)
	if err != nil {
		return err
	}
	defer cl.Stop()
	type stats struct {
		History struct {
			Messages int   `json:"messages"`
			Bytes    int64 `json:"bytes"`
		} `json:"history"`
	}
	before, err := readProcStatus(cl.PIDs[0])
	if err != nil {
		return err
	}
	const conns = 4
	per := cfg.MemMsgs / conns
	data := strings.Repeat("x", max(cfg.Size-2, 0))
	if err := parallel(conns, conns, func(c int) error {
		s, err := dialRaw(ctx, cl.URLs[0])
		if err != nil {
			return err
		}
		defer s.nc.Close()
		go func() { // drain the acks of the sync publishes below
			for {
				if _, err := s.next(); err != nil {
					return
				}
			}
		}()
		var buf []byte
		for i := range per {
			buf = fmt.Appendf(buf[:0], `{"op":"pub","ch":"mem:%d","data":"%s"}`, (c*per+i)%1000, data)
			if err := wsutil.WriteClientText(s.nc, buf); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	var st stats
	if err := pollUntil(ctx, 60*time.Second, func() bool {
		return getJSON(ctx, cl.StatsURLs[0], &st) == nil && st.History.Messages >= conns*per
	}); err != nil {
		return fmt.Errorf("the node holds %d of %d messages: %w", st.History.Messages, conns*per, err)
	}
	after, err := readProcStatus(cl.PIDs[0])
	if err != nil {
		return err
	}
	m := &rep.Memory
	m.Messages, m.RSSBeforeKiB, m.RSSAfterKiB = st.History.Messages, before.RSSKiB, after.RSSKiB
	m.BytesPerMsg = float64(after.RSSKiB-before.RSSKiB) * 1024 / float64(st.History.Messages)
	m.CountedPerMsg = float64(st.History.Bytes) / float64(st.History.Messages)
	return nil
}

// ackLatency publishes at cfg.Rate from one client per node, alternating
// the channel with history and the one without, and times each ack.
func ackLatency(ctx context.Context, cl *cluster, cfg historyConfig, rep *historyReport) error {
	var subs []*client.Client
	defer func() {
		for _, c := range subs {
			c.Close()
		}
	}()
	for i := range cfg.Subs {
		c, err := client.Dial(ctx, cl.URLs[i%len(cl.URLs)])
		if err != nil {
			return err
		}
		subs = append(subs, c)
		for _, ch := range []string{"bench:lat", "lat"} {
			if _, err := c.Subscribe(ctx, ch); err != nil {
				return err
			}
		}
	}
	var pubs []*client.Client
	for _, u := range cl.URLs {
		c, err := client.Dial(ctx, u)
		if err != nil {
			return err
		}
		defer c.Close()
		pubs = append(pubs, c)
	}
	payload := []byte(`"` + strings.Repeat("x", max(cfg.Size-2, 0)) + `"`)
	var mu sync.Mutex
	var hist, plain []time.Duration
	n := int(cfg.Rate * cfg.Duration.Seconds())
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	var pubErr error
	for k := range n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := "lat"
			if k%2 == 0 {
				ch = "bench:lat"
			}
			start := time.Now()
			err := pubs[k%len(pubs)].Publish(ctx, ch, payload)
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				pubErr = err
				return
			}
			if k%2 == 0 {
				hist = append(hist, d)
			} else {
				plain = append(plain, d)
			}
		}()
	}
	wg.Wait()
	if pubErr != nil {
		return fmt.Errorf("publish: %w", pubErr)
	}
	rep.Ack.History, rep.Ack.Plain = summarize(hist), summarize(plain)
	return nil
}

// rawSub is one recovering client: a raw connection, to see every frame.
type rawSub struct {
	nc  net.Conn
	br  *bufio.Reader
	pos string
}

func dialRaw(ctx context.Context, url string) (*rawSub, error) {
	d := ws.Dialer{Timeout: 10 * time.Second}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	s := &rawSub{nc: nc, br: bufio.NewReader(r)}
	if _, err := s.next(); err != nil { // hello
		nc.Close()
		return nil, err
	}
	return s, nil
}

type rawFrame struct {
	Op        string          `json:"op"`
	Pos       string          `json:"pos"`
	Data      json.RawMessage `json:"data"`
	Recovered *bool           `json:"recovered"`
	Code      int             `json:"code"`
	Reason    string          `json:"reason"`
}

func (s *rawSub) next() (rawFrame, error) {
	var f rawFrame
	for {
		b, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{s.br, s.nc})
		if err != nil {
			return f, err
		}
		if op == ws.OpText {
			return f, json.Unmarshal(b, &f)
		}
	}
}

func (s *rawSub) send(text string) error {
	return wsutil.WriteClientText(s.nc, []byte(text))
}

// recoveryRun is the recovery measurement (see the top of the file).
func recoveryRun(ctx context.Context, cl *cluster, cfg historyConfig, rep *historyReport) error {
	const ch, warm = "bench:rec", 10
	r := &rep.Recovery
	r.Clients, r.Missed = cfg.Clients, cfg.Missed
	subs := make([]*rawSub, cfg.Clients)
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.nc.Close()
			}
		}
	}()
	if err := parallel(cfg.Clients, 64, func(i int) error {
		s, err := dialRaw(ctx, cl.URLs[2])
		if err != nil {
			return err
		}
		subs[i] = s
		if err := s.send(`{"op":"sub","ch":"bench:rec","id":1}`); err != nil {
			return err
		}
		if f, err := s.next(); err != nil || f.Op != "ack" {
			return fmt.Errorf("sub: %+v %v", f, err)
		}
		return nil
	}); err != nil {
		return err
	}
	pub, err := client.Connect(ctx, client.Config{URLs: []string{cl.URLs[0]}})
	if err != nil {
		return err
	}
	defer pub.Close()
	payload := func(i int) []byte {
		return fmt.Appendf(nil, `{"i":%d,"x":"%s"}`, i, strings.Repeat("x", max(cfg.Size-16, 0)))
	}
	for i := range warm {
		if err := pub.Publish(ctx, ch, payload(i)); err != nil {
			return err
		}
	}
	if err := parallel(cfg.Clients, 64, func(i int) error {
		for range warm {
			f, err := subs[i].next()
			if err != nil || f.Op != "msg" {
				return fmt.Errorf("warm-up delivery: %+v %v", f, err)
			}
			subs[i].pos = f.Pos
		}
		return nil
	}); err != nil {
		return err
	}
	if err := syscall.Kill(cl.PIDs[2], syscall.SIGKILL); err != nil {
		return err
	}
	for _, s := range subs {
		s.nc.Close()
	}
	// Publish once node 0 has seen its link to node 2 go: a publish in
	// the instant before may be refused (503: not stored twice), and
	// publishing it again would deliver it twice.
	if err := pollUntil(ctx, 10*time.Second, func() bool {
		var v struct {
			Links []struct {
				Peer, State string
			} `json:"links"`
		}
		if getJSON(ctx, cl.ClusterURLs[0], &v) != nil {
			return false
		}
		for _, l := range v.Links {
			if l.Peer == "bench-2" && l.State == "up" {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("node 0 did not see node 2 die: %w", err)
	}
	for i := warm; i < warm+cfg.Missed; i++ {
		if err := pub.Publish(ctx, ch, payload(i)); err != nil {
			r.PubErrors++
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	// Every client reconnects at once, alternately to node 0 and node 1.
	var mu sync.Mutex
	var per []time.Duration
	first := time.Now()
	var last time.Time
	_ = parallel(cfg.Clients, cfg.Clients, func(i int) error {
		start := time.Now()
		outcome := recoverOne(ctx, cl.URLs[i%2], subs[i].pos, warm, cfg.Missed)
		d := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case outcome == "complete":
			r.Complete++
			per = append(per, d)
			if now := time.Now(); now.After(last) {
				last = now
			}
		case strings.HasPrefix(outcome, "partial"):
			if r.Partial == 0 {
				r.FirstProblem = outcome
			}
			r.Partial++
		default:
			if r.Failed == 0 && r.FirstProblem == "" {
				r.FirstProblem = outcome
			}
			r.Failed++
		}
		return nil
	})
	r.PerClient = summarize(per)
	if !last.IsZero() {
		r.AllDoneSec = last.Sub(first).Seconds()
	}
	return nil
}

// recoverOne resumes one client and says how it went: "complete" when it
// got messages warm..warm+missed-1 exactly, in order, then
// recovered:true.
func recoverOne(ctx context.Context, url, pos string, warm, missed int) string {
	s, err := dialRaw(ctx, url)
	if err != nil {
		return "failed: " + err.Error()
	}
	defer s.nc.Close()
	if err := s.send(fmt.Sprintf(`{"op":"sub","ch":"bench:rec","id":2,"since":%q}`, pos)); err != nil {
		return "failed: " + err.Error()
	}
	want := warm
	for {
		f, err := s.next()
		if err != nil {
			return "failed"
		}
		switch f.Op {
		case "msg":
			var p struct {
				I int `json:"i"`
			}
			if json.Unmarshal(f.Data, &p) != nil || p.I != want {
				return fmt.Sprintf("partial: got %s, want i=%d", f.Data, want)
			}
			want++
		case "ack":
			if f.Recovered != nil && *f.Recovered && want == warm+missed {
				return "complete"
			}
			return fmt.Sprintf("partial: ack recovered=%v after %d messages", f.Recovered != nil && *f.Recovered, want-warm)
		default:
			return "failed"
		}
	}
}

// parallel runs f(0..n-1) with at most width at once and returns the
// first error.
func parallel(n, width int, f func(int) error) error {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
