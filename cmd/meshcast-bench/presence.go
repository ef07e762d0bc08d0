package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws"
)

// The presence scenario (issue 13): Members connections present on one
// channel, spread over the nodes, then churn at Rate events per second (a
// leave and a join in turn, on random nodes, so the member count holds),
// with each node's CPU and the presence bytes between nodes measured over
// the churn and, before it, over as long with no churn; then the time of
// a presence answer of the whole channel, by the server API and by the
// client op.

type presenceConfig struct {
	URLs        []string
	ClusterURLs []string
	PIDs        []int
	APIKey      string
	Channel     string
	Members     int
	Rate        float64
	Duration    time.Duration
	Queries     int
	DialConc    int
	// Baseline: the namespace has no presence; the same churn measures
	// what connections coming and going cost without it.
	Baseline bool
}

type presenceNode struct {
	URL            string  `json:"url"`
	CPUIdleSec     float64 `json:"cpuIdleSeconds"`  // over Duration before the churn
	CPUChurnSec    float64 `json:"cpuChurnSeconds"` // over the churn
	CPUPerEventUs  float64 `json:"cpuPerEventUs"`   // (churn - idle) / events: every event of the cluster, local or not
	FramesSent     uint64  `json:"presenceFramesSent"`
	BytesSent      uint64  `json:"presenceBytesSent"`
	InterestSent   uint64  `json:"interestFramesSent"`
	APIQueryP50Ms  float64 `json:"apiQueryP50ms"`
	APIQueryMaxMs  float64 `json:"apiQueryMaxms"`
	OpQueryP50Ms   float64 `json:"opQueryP50ms"`
	OpQueryMaxMs   float64 `json:"opQueryMaxms"`
	MembersQueried int     `json:"membersQueried"`
}

type presenceReport struct {
	Scenario       string         `json:"scenario"`
	Members        int            `json:"members"`
	Rate           float64        `json:"targetEventsPerSec"`
	Events         int64          `json:"events"`
	EventsPerSec   float64        `json:"eventsPerSec"`
	BytesPerEvent  float64        `json:"presenceBytesPerEvent"`  // between nodes, every link
	FramesPerEvent float64        `json:"presenceFramesPerEvent"` // likewise: one per peer of the node the event is on
	Nodes          []presenceNode `json:"nodes"`
	Setup          float64        `json:"setupSeconds"`
}

// memberConn is one present connection.
type memberConn struct {
	c   *wsConn
	url string
}

func runPresence(ctx context.Context, cfg presenceConfig, stderr io.Writer) (*presenceReport, error) {
	rep := &presenceReport{Scenario: "presence", Members: cfg.Members, Rate: cfg.Rate}
	start := time.Now()
	pool, err := openMembers(ctx, cfg, cfg.Members)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, m := range pool.all() {
			m.c.close()
		}
	}()
	if err := awaitMembers(ctx, cfg, cfg.Members); err != nil {
		return nil, err
	}
	rep.Setup = time.Since(start).Seconds()
	fmt.Fprintf(stderr, "presence: %d members present on every node after %.1fs; idle for %v\n", cfg.Members, rep.Setup, cfg.Duration)

	cpu0 := cpus(cfg.PIDs)
	if err := sleepCtx(ctx, cfg.Duration); err != nil {
		return nil, err
	}
	cpu1 := cpus(cfg.PIDs)
	link0, err := presenceCounters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "presence: churning at %.0f events/s for %v\n", cfg.Rate, cfg.Duration)
	events, took, err := churnMembers(ctx, cfg, pool)
	if err != nil {
		return nil, err
	}
	cpu2 := cpus(cfg.PIDs)
	if err := awaitMembers(ctx, cfg, pool.len()); err != nil {
		return nil, err
	}
	link1, err := presenceCounters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rep.Events, rep.EventsPerSec = events, float64(events)/took.Seconds()
	var frames, bytes uint64
	for i, u := range cfg.URLs {
		n := presenceNode{URL: u,
			FramesSent: link1[i].FramesSent - link0[i].FramesSent, BytesSent: link1[i].BytesSent - link0[i].BytesSent,
			InterestSent: link1[i].Interest - link0[i].Interest}
		if i < len(cfg.PIDs) {
			idle, churn := cpu1[i]-cpu0[i], cpu2[i]-cpu1[i]
			idle = time.Duration(float64(idle) * took.Seconds() / cfg.Duration.Seconds()) // the same length as the churn
			n.CPUIdleSec, n.CPUChurnSec = idle.Seconds(), churn.Seconds()
			n.CPUPerEventUs = float64(churn-idle) / float64(time.Microsecond) / float64(max(events, 1))
		}
		frames += n.FramesSent
		bytes += n.BytesSent
		rep.Nodes = append(rep.Nodes, n)
	}
	rep.FramesPerEvent = float64(frames) / float64(max(events, 1))
	rep.BytesPerEvent = float64(bytes) / float64(max(events, 1))
	for i := range rep.Nodes {
		if err := timeQueries(ctx, cfg, i, &rep.Nodes[i]); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// memberPool is the present connections, for the churn to pick from.
type memberPool struct {
	mu      sync.Mutex
	members []memberConn
}

func (p *memberPool) add(m memberConn) {
	p.mu.Lock()
	p.members = append(p.members, m)
	p.mu.Unlock()
}

// take removes a random member.
func (p *memberPool) take() (memberConn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.members) == 0 {
		return memberConn{}, false
	}
	i := rand.IntN(len(p.members))
	m := p.members[i]
	p.members[i] = p.members[len(p.members)-1]
	p.members = p.members[:len(p.members)-1]
	return m, true
}

func (p *memberPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.members)
}

func (p *memberPool) all() []memberConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members)
}

// openMembers opens n connections round-robin over the URLs, each
// subscribed to the channel.
func openMembers(ctx context.Context, cfg presenceConfig, n int) (*memberPool, error) {
	pool := &memberPool{}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.DialConc)
	for range cfg.DialConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				m, err := joinMember(ctx, cfg, cfg.URLs[i%len(cfg.URLs)])
				if err != nil {
					errs <- err
					return
				}
				pool.add(m)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, m := range pool.all() {
			m.c.close()
		}
		return nil, err
	}
	return pool, nil
}

// joinMember connects to url and subscribes to the channel: one join.
func joinMember(ctx context.Context, cfg presenceConfig, url string) (memberConn, error) {
	c, err := dialWS(ctx, url, nil, 4096, 10*time.Second)
	if err != nil {
		return memberConn{}, err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	sub := fmt.Appendf(nil, `{"op":"sub","ch":%q,"id":1}`, cfg.Channel)
	if err := c.write(ws.OpText, sub); err != nil {
		c.close()
		return memberConn{}, err
	}
	for {
		op, msg, err := c.fr.next()
		if err != nil {
			c.close()
			return memberConn{}, fmt.Errorf("waiting for the sub's ack: %w", err)
		}
		if op.IsControl() {
			continue
		}
		if strings.Contains(string(msg), `"op":"ack"`) {
			_ = c.nc.SetReadDeadline(time.Time{})
			return memberConn{c: c, url: url}, nil
		}
		if strings.Contains(string(msg), `"op":"err"`) {
			c.close()
			return memberConn{}, fmt.Errorf("sub refused: %s", msg)
		}
	}
}

// churnMembers makes events at cfg.Rate for cfg.Duration: a leave (a
// member's connection closed), then a join (a new one), in turn, so the
// count holds. Joins run on their own goroutines, bounded, so a slow
// handshake does not slow the schedule; it returns the events made and
// how long they took.
func churnMembers(ctx context.Context, cfg presenceConfig, pool *memberPool) (int64, time.Duration, error) {
	var events atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	slots := make(chan struct{}, cfg.DialConc)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	for i := 0; time.Since(start) < cfg.Duration; i++ {
		if err := sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))); err != nil {
			return 0, 0, err
		}
		if i%2 == 0 {
			if m, ok := pool.take(); ok {
				m.c.close()
				events.Add(1)
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			return 0, 0, fmt.Errorf("more than %d joins in flight: the nodes do not keep up with %.0f events/s", cfg.DialConc, cfg.Rate)
		}
		wg.Add(1)
		go func(url string) {
			defer wg.Done()
			defer func() { <-slots }()
			m, err := joinMember(ctx, cfg, url)
			if err != nil {
				failed.Store(&err)
				return
			}
			pool.add(m)
			events.Add(1)
		}(cfg.URLs[rand.IntN(len(cfg.URLs))])
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return 0, 0, *err
	}
	return events.Load(), time.Since(start), nil
}

// awaitMembers waits until every node's presence_stats counts n clients.
func awaitMembers(ctx context.Context, cfg presenceConfig, n int) error {
	if cfg.Baseline {
		return nil
	}
	return pollUntil(ctx, 60*time.Second, func() bool {
		for _, u := range cfg.ClusterURLs {
			var st struct{ Clients int }
			if apiGet(ctx, cfg, u, "presence_stats", &st) != nil || st.Clients != n {
				return false
			}
		}
		return true
	})
}

func apiGet(ctx context.Context, cfg presenceConfig, clusterURL, op string, v any) error {
	url := strings.Replace(clusterURL, "/api/cluster", "/api/"+op+"?ch="+cfg.Channel, 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type linkCounters struct{ FramesSent, BytesSent, Interest uint64 }

// presenceCounters reads each node's presence frames and bytes sent, and
// its interest frames sent, from /api/cluster.
func presenceCounters(ctx context.Context, cfg presenceConfig) ([]linkCounters, error) {
	out := make([]linkCounters, len(cfg.ClusterURLs))
	for i, u := range cfg.ClusterURLs {
		var v struct {
			Presence struct {
				FramesSent uint64 `json:"frames_sent"`
				BytesSent  uint64 `json:"bytes_sent"`
			} `json:"presence"`
			Links []struct {
				InterestSent uint64 `json:"interest_sent"`
			} `json:"links"`
		}
		if err := getJSON(ctx, u, &v); err != nil {
			return nil, err
		}
		out[i] = linkCounters{FramesSent: v.Presence.FramesSent, BytesSent: v.Presence.BytesSent}
		for _, l := range v.Links {
			out[i].Interest += l.InterestSent
		}
	}
	// interest_sent counts every control frame written, presence frames
	// included: take those out.
	for i := range out {
		out[i].Interest -= min(out[i].Interest, out[i].FramesSent)
	}
	return out, nil
}

// timeQueries times cfg.Queries presence answers of the whole channel
// from node i, by the server API and by the client op.
func timeQueries(ctx context.Context, cfg presenceConfig, i int, n *presenceNode) error {
	if cfg.Baseline {
		return nil
	}
	var api, op []time.Duration
	for range cfg.Queries {
		var body struct{ Members []json.RawMessage }
		t0 := time.Now()
		if err := apiGet(ctx, cfg, cfg.ClusterURLs[i], "presence", &body); err != nil {
			return err
		}
		api = append(api, time.Since(t0))
		n.MembersQueried = len(body.Members)
	}
	c, err := dialWS(ctx, cfg.URLs[i], nil, 1<<20, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.close()
	_ = c.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	for q := range cfg.Queries {
		t0 := time.Now()
		if err := c.write(ws.OpText, fmt.Appendf(nil, `{"op":"presence","ch":%q,"id":%d}`, cfg.Channel, q+1)); err != nil {
			return err
		}
		for {
			kind, msg, err := c.fr.next()
			if err != nil {
				return err
			}
			if !kind.IsControl() && strings.HasPrefix(string(msg), `{"op":"presence"`) {
				if strings.Contains(string(msg[len(msg)-20:]), `"more":true`) {
					return errors.New("the presence answer came in pages: raise the nodes' --write-queue")
				}
				break
			}
		}
		op = append(op, time.Since(t0))
	}
	n.APIQueryP50Ms, n.APIQueryMaxMs = p50max(api)
	n.OpQueryP50Ms, n.OpQueryMaxMs = p50max(op)
	return nil
}

func p50max(d []time.Duration) (p50, mx float64) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return float64(d[len(d)/2]) / 1e6, float64(d[len(d)-1]) / 1e6
}

func cpus(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, p := range pids {
		out[i] = procCPU(p)
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func printPresence(w io.Writer, r *presenceReport) {
	fmt.Fprintf(w, "presence: %d members, %d events in the churn (%.0f/s), %.1f presence frames and %.0f bytes between nodes per event\n",
		r.Members, r.Events, r.EventsPerSec, r.FramesPerEvent, r.BytesPerEvent)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tCPU idle s\tCPU churn s\tCPU/event µs\tframes sent\tbytes sent\tinterest sent\tAPI p50 ms\tAPI max ms\top p50 ms\top max ms\tmembers\t")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", n.URL, n.CPUIdleSec, n.CPUChurnSec,
			n.CPUPerEventUs, n.FramesSent, n.BytesSent, n.InterestSent, n.APIQueryP50Ms, n.APIQueryMaxMs, n.OpQueryP50Ms, n.OpQueryMaxMs, n.MembersQueried)
	}
	tw.Flush()
}

func cmdPresence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg presenceConfig
	var bin, namespace, nodeFlags string
	var nodes, basePort int
	var asJSON bool
	fs.IntVar(&nodes, "nodes", 3, "meshcast nodes to start on loopback")
	fs.StringVar(&bin, "meshcast-bin", "", "meshcast binary (default: built from this module)")
	fs.IntVar(&basePort, "base-port", 19400, "node i: HTTP base+i, gossip base+100+2i, peer links base+101+2i")
	fs.StringVar(&namespace, "namespace", "room:presence=on", "the channel's namespace on every node (add ,join_leave=on for events; without presence=on: a baseline of the same churn)")
	fs.StringVar(&cfg.Channel, "channel", "room:bench", "the presence channel")
	fs.IntVar(&cfg.Members, "members", 10000, "connections present on the channel, spread over the nodes")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "presence events per second in the churn (a leave and a join in turn)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "the churn's length, and the idle baseline's before it")
	fs.IntVar(&cfg.Queries, "queries", 20, "presence answers timed per node, by the API and by the client op")
	fs.IntVar(&cfg.DialConc, "dial-concurrency", 64, "connections being opened at once")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
	fs.StringVar(&nodeFlags, "node-flags", "", "more flags for every node, space-separated (e.g. --pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Baseline = !strings.Contains(namespace, "presence=on")
	if cfg.Members < 2 || cfg.Rate <= 0 || cfg.Duration <= 0 || nodes < 1 {
		return errors.New("--members must be at least 2, --rate, --duration and --nodes positive")
	}
	if bin == "" {
		wd, _ := os.Getwd()
		root, err := moduleRoot(wd)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "meshcast-bench-presence-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if bin, err = buildMeshcast(ctx, root, dir, stderr); err != nil {
			return err
		}
	}
	cfg.APIKey = "bench-presence"
	cl, err := startMeshcast(ctx, meshcastOpts{Bin: bin, BasePort: basePort, Extra: append([]string{
		"--namespace", namespace, "--api-key", cfg.APIKey, "--insecure",
		"--ping-interval", "10m", // members never read: no ping may time them out
		"--write-queue", "4194304", // one answer of 10,000 members, not pages
	}, strings.Fields(nodeFlags)...)}, nodes, stderr)
	if err != nil {
		return err
	}
	defer cl.Stop()
	cfg.URLs, cfg.ClusterURLs, cfg.PIDs = cl.URLs, cl.ClusterURLs, cl.PIDs
	rep, err := runPresence(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	printPresence(stdout, rep)
	return nil
}
