package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

type idleConfig struct {
	connConfig
	Conns     int
	PIDs      []int
	StatsURLs []string
	Hold      time.Duration // longest wait for the server's RSS to settle
	Channel   string        // connection g subscribes to Channel-g
}

type procRow struct {
	PID           int   `json:"pid"`
	RSSBeforeKiB  int64 `json:"rssBeforeKiB"`
	RSSAfterKiB   int64 `json:"rssAfterKiB"`
	ThreadsBefore int64 `json:"threadsBefore"`
	ThreadsAfter  int64 `json:"threadsAfter"`
}

type goroutineRow struct {
	URL    string `json:"url"`
	Before int64  `json:"before"` // -1: not available
	After  int64  `json:"after"`
}

type idleReport struct {
	Scenario string   `json:"scenario"`
	Proto    string   `json:"proto"`
	URLs     []string `json:"urls"`
	Conns    int      `json:"conns"`
	Workers  int      `json:"workers"`
	connectResult
	SettleSamples int            `json:"settleSamples"`
	Procs         []procRow      `json:"procs"`
	RSSDeltaKiB   int64          `json:"rssDeltaKiB"`
	KiBPerConn    float64        `json:"kibPerConn"`
	Goroutines    []goroutineRow `json:"goroutines,omitempty"`
}

func (cfg *idleConfig) defaults() {
	if cfg.Channel == "" {
		cfg.Channel = "idle"
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 90*time.Second + time.Duration(cfg.Conns/100)*time.Second + cfg.Hold
	}
}

// runIdle measures what idle subscribed connections cost the server.
func runIdle(ctx context.Context, cfg idleConfig, stderr io.Writer) (*idleReport, error) {
	cfg.defaults()
	if cfg.Conns < 1 {
		return nil, errors.New("idle needs --conns above zero")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	rep := &idleReport{Scenario: "idle", Proto: cfg.Proto, URLs: cfg.URLs, Conns: cfg.Conns}
	for _, pid := range cfg.PIDs {
		s, err := readProcStatus(pid)
		if err != nil {
			return nil, err
		}
		rep.Procs = append(rep.Procs, procRow{PID: pid, RSSBeforeKiB: s.RSSKiB, ThreadsBefore: s.Threads})
	}
	for _, u := range cfg.StatsURLs {
		rep.Goroutines = append(rep.Goroutines, goroutineRow{URL: u, Before: statsGoroutines(ctx, u), After: -1})
	}

	k := workerCount(cfg.Conns, cfg.PerWorker, 1, cfg.Workers)
	rep.Workers = k
	c, err := startWorkers(k, stderr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	pr := newProgress(stderr, cfg.Quiet, cfg.Conns)
	c.progress = pr.print
	defer pr.done()
	t0 := time.Now()
	for i, sh := range split(cfg.Conns, k) {
		sc := cfg.baseSetup(cfg.Conns)
		sc.ReadBuf = 1024 // idle connections only see acks and pings
		sc.Channel, sc.OwnChannel = cfg.Channel, true
		sc.SubFirst, sc.SubCount = sh.first, sh.count
		if err := c.send(i, command{Cmd: cmdSetup, Setup: &sc}); err != nil {
			return nil, err
		}
	}
	if rep.connectResult, err = awaitReady(ctx, c, t0); err != nil {
		return nil, err
	}

	if err := settle(ctx, c, rep, cfg.Hold); err != nil {
		return rep, err
	}
	for i := range rep.Goroutines {
		rep.Goroutines[i].After = statsGoroutines(ctx, rep.Goroutines[i].URL)
	}
	for _, p := range rep.Procs {
		rep.RSSDeltaKiB += p.RSSAfterKiB - p.RSSBeforeKiB
	}
	if n := max(rep.Acked, 1); len(rep.Procs) > 0 {
		rep.KiBPerConn = float64(rep.RSSDeltaKiB) / float64(n)
	}
	return rep, nil
}

// settle samples the servers' RSS every half second until three samples
// in a row fail to go lower (the GC has returned what it will), or hold
// passes, and keeps the last reading.
func settle(ctx context.Context, c *coord, rep *idleReport, hold time.Duration) error {
	if len(rep.Procs) == 0 {
		return nil
	}
	deadline := time.Now().Add(hold)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	lowest, flat := int64(-1), 0
	for {
		var total int64
		for i := range rep.Procs {
			s, err := readProcStatus(rep.Procs[i].PID)
			if err != nil {
				return err
			}
			rep.Procs[i].RSSAfterKiB, rep.Procs[i].ThreadsAfter = s.RSSKiB, s.Threads
			total += s.RSSKiB
		}
		rep.SettleSamples++
		if lowest < 0 || total < lowest-lowest/200 {
			lowest, flat = total, 0
		} else {
			flat++
		}
		if flat >= 3 || !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("settle: %w", ctx.Err())
		case <-t.C:
			c.maybeProgress()
		}
	}
}
