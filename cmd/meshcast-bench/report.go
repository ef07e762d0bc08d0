package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// connectResult is how the connect phase went, in every report that has one.
type connectResult struct {
	Connected  int64   `json:"connected"`
	Acked      int64   `json:"acked"`
	DialErrs   int64   `json:"dialErrors"`
	SubErrs    int64   `json:"subErrors"`
	ConnectSec float64 `json:"connectSeconds"`
}

func (r connectResult) String() string {
	return fmt.Sprintf("connected %d, subscribed %d in %.1fs; dial errors %d, subscribe errors %d",
		r.Connected, r.Acked, r.ConnectSec, r.DialErrs, r.SubErrs)
}

// awaitReady waits until every worker has connected and subscribed its
// share, started at t0.
func awaitReady(ctx context.Context, c *coord, t0 time.Time) (connectResult, error) {
	evs, err := c.waitAll(ctx, evReady)
	if err != nil {
		return connectResult{}, err
	}
	ready, _ := mergeEvents(evs)
	return connectResult{Connected: ready.Connected, Acked: ready.Acked, DialErrs: ready.DialErrs,
		SubErrs: ready.SubErrs, ConnectSec: time.Since(t0).Seconds()}, nil
}

func printFanout(w io.Writer, r *fanoutReport) {
	if r.Rooms > 0 {
		fmt.Fprintf(w, "rooms: %d rooms of %d subscribers, every %d-th room spread over all urls\n", r.Rooms, r.RoomSize, r.CrossEvery)
	}
	fmt.Fprintf(w, "%s %s: %d subscribers, %d publishers, %d-byte payloads, %d workers, urls %s\n",
		r.Scenario, r.Proto, r.Subs, r.Pubs, r.Size, r.Workers, strings.Join(r.URLs, ","))
	fmt.Fprintln(w, r.connectResult)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\trate\tpub/s\twall s\tdeliv/s\texpected\treceived\tlost\tdup\treorder\tp50ms\tp90ms\tp99ms\tmaxms\tpuberr\tdisc\tok\t")
	for _, s := range r.Steps {
		ok := "yes"
		if !s.OK {
			ok = "NO"
		}
		if s.ClientBound {
			ok += "(client-bound)"
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t%.0f\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t\n",
			s.Step, s.TargetRate, s.PubPerSec, s.WallSec, s.DelivPerSec, s.Expected, s.Received, s.Lost, s.Dups, s.Reordered,
			s.P50, s.P90, s.P99, s.Max, s.PubErrs, s.Disconnects, ok)
	}
	_ = tw.Flush()
	for _, s := range r.Steps {
		if s.CrossBytes != 0 {
			fmt.Fprintf(w, "step %d: %d bytes between nodes, %.1f per publish, %.1f per delivery\n", s.Step, s.CrossBytes, s.CrossPerPub, s.CrossPerDel)
		}
	}
	for _, s := range r.Steps {
		if s.ReadP99 != 0 {
			fmt.Fprintf(w, "step %d: latency above ends at the kernel's receive timestamp; at the load tool's read: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; %d deliveries without a timestamp, timed at the read; %d read together with a later one, timed at its stamp (an upper bound)\n",
				s.Step, s.ReadP50, s.ReadP90, s.ReadP99, s.ReadMax, s.Unstamped, s.Coalesced)
		}
	}
	for _, s := range r.Steps {
		if s.Local != nil && s.Remote != nil && s.Local.Deliveries > 0 && s.Remote.Deliveries > 0 {
			fmt.Fprintf(w, "step %d: subscribers on the publisher's node: %d deliveries, p50 %.2f ms, p99 %.2f ms, max %.2f ms; on other nodes: %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
				s.Step, s.Local.Deliveries, s.Local.P50, s.Local.P99, s.Local.Max, s.Remote.Deliveries, s.Remote.P50, s.Remote.P99, s.Remote.Max)
		}
	}
	for _, s := range r.Steps {
		if s.ClientCPUus != 0 || s.ServerCPUus != 0 {
			fmt.Fprintf(w, "step %d: CPU per delivery: load tool %.2f µs, servers %.2f µs\n", s.Step, s.ClientCPUus, s.ServerCPUus)
		}
	}
	if r.Stopped != "" {
		fmt.Fprintf(w, "ramp stopped: %s; best rate with no loss and p99 <= %.0fms: %.0f publishes/s (%.0f deliveries/s)\n",
			r.Stopped, r.P99BoundMs, r.BestRate, r.BestRate*float64(r.Acked))
	}
}

func printIdle(w io.Writer, r *idleReport) {
	fmt.Fprintf(w, "idle %s: %d connections over %d workers, urls %s\n", r.Proto, r.Conns, r.Workers, strings.Join(r.URLs, ","))
	fmt.Fprintln(w, r.connectResult)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pid\trss before KiB\trss after KiB\tdelta KiB\tthreads before\tthreads after\t")
	for _, p := range r.Procs {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t\n", p.PID, p.RSSBeforeKiB, p.RSSAfterKiB,
			p.RSSAfterKiB-p.RSSBeforeKiB, p.ThreadsBefore, p.ThreadsAfter)
	}
	_ = tw.Flush()
	if len(r.Procs) > 0 {
		fmt.Fprintf(w, "rss growth %d KiB = %.2f KiB per connection (%d settle samples)\n", r.RSSDeltaKiB, r.KiBPerConn, r.SettleSamples)
	}
	for _, g := range r.Goroutines {
		fmt.Fprintf(w, "goroutines %s: %s -> %s\n", g.URL, orNA(g.Before), orNA(g.After))
	}
}

func orNA(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}
