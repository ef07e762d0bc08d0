package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

type churnConfig struct {
	connConfig
	Rate       float64 // connections per second (first step when ramping)
	Duration   time.Duration
	Conc       int // attempts in flight per worker
	Sources    int // loopback source addresses to rotate over
	Channel    string
	Channels   int // attempt n subscribes to Channel-(n % Channels)
	Ramp       bool
	RampFactor float64
	MaxSteps   int
	P99Bound   time.Duration
	MaxErrRate float64 // highest acceptable error rate of a sustained step
}

type churnStep struct {
	Step        int     `json:"step"`
	TargetRate  float64 `json:"targetRate"`
	Seconds     float64 `json:"seconds"`     // scheduled time
	WallSec     float64 `json:"wallSeconds"` // until the last subscribe ack
	Attempts    int64   `json:"attempts"`
	OK          int64   `json:"subscribed"`
	DialErrs    int64   `json:"upgradeErrors"`
	SubErrs     int64   `json:"subscribeErrors"`
	ErrRate     float64 `json:"errorRate"`
	PerSec      float64 `json:"upgradesPerSec"` // subscribed connections per wall second
	P50         float64 `json:"p50ms"`          // dial to subscribe ack
	P99         float64 `json:"p99ms"`
	Max         float64 `json:"maxms"`
	Sustained   bool    `json:"sustained"`
	ClientBound bool    `json:"behind"` // fewer attempts than scheduled: every slot was busy
}

type churnReport struct {
	Scenario   string      `json:"scenario"`
	Proto      string      `json:"proto"`
	URLs       []string    `json:"urls"`
	Workers    int         `json:"workers"`
	Conc       int         `json:"concPerWorker"`
	P99BoundMs float64     `json:"p99BoundMs"`
	Steps      []churnStep `json:"steps"`
	BestRate   float64     `json:"bestRate"` // highest sustained upgrades/s measured
	Stopped    string      `json:"stopped,omitempty"`
}

func (cfg *churnConfig) defaults() {
	if cfg.Channel == "" {
		cfg.Channel = "churn"
	}
	cfg.Channels = max(cfg.Channels, 1)
	if cfg.Conc <= 0 {
		cfg.Conc = 256
	}
	rampDefaults(&cfg.RampFactor, &cfg.MaxSteps, &cfg.P99Bound)
	if cfg.MaxErrRate <= 0 {
		cfg.MaxErrRate = 0.001
	}
	if cfg.Timeout <= 0 {
		steps := 1
		if cfg.Ramp {
			steps = cfg.MaxSteps
		}
		cfg.Timeout = 30*time.Second + time.Duration(steps)*(cfg.Duration+cfg.DialTimeout+cfg.AckTimeout+5*time.Second)
	}
}

// runChurn runs churn steps (one, or a ramp) and returns the report.
func runChurn(ctx context.Context, cfg churnConfig, stderr io.Writer) (*churnReport, error) {
	cfg.defaults()
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("churn needs --rate and --duration above zero")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	k := workerCount(0, cfg.PerWorker, 2, cfg.Workers)
	c, err := startWorkers(k, stderr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	rep := &churnReport{Scenario: "churn", Proto: cfg.Proto, URLs: cfg.URLs, Workers: k, Conc: cfg.Conc,
		P99BoundMs: ms(uint64(cfg.P99Bound))}
	pr := newProgress(stderr, cfg.Quiet, 0)
	pr.churn = true
	c.progress = pr.print
	defer pr.done()
	sc := cfg.baseSetup(0)
	sc.Channel, sc.Rooms = cfg.Channel, cfg.Channels
	if err := c.broadcast(command{Cmd: cmdSetup, Setup: &sc}); err != nil {
		return nil, err
	}
	if _, err := c.waitAll(ctx, evReady); err != nil {
		return nil, err
	}
	rate := cfg.Rate
	for step := 1; ; step++ {
		pr.setStep(step, rate)
		res, err := churnStepRun(ctx, c, cfg, step, rate, k)
		if err != nil {
			return rep, err
		}
		rep.Steps = append(rep.Steps, res)
		if res.Sustained {
			rep.BestRate = max(rep.BestRate, res.PerSec)
		}
		switch {
		case !cfg.Ramp:
			return rep, nil
		case !res.Sustained:
			rep.Stopped = "not sustained"
		case step >= cfg.MaxSteps:
			rep.Stopped = "max steps"
		}
		if rep.Stopped != "" {
			return rep, nil
		}
		rate = math.Round(rate * cfg.RampFactor)
	}
}

func churnStepRun(ctx context.Context, c *coord, cfg churnConfig, step int, rate float64, k int) (churnStep, error) {
	res := churnStep{Step: step, TargetRate: rate, Seconds: cfg.Duration.Seconds()}
	rc := runCmd{Step: step, Rate: rate / float64(k), DurMs: cfg.Duration.Milliseconds(),
		StartNs: time.Now().Add(100 * time.Millisecond).UnixNano(), Conc: cfg.Conc, Sources: cfg.Sources, Workers: k}
	if err := c.broadcast(command{Cmd: cmdChurnStep, Run: &rc}); err != nil {
		return res, err
	}
	evs, err := c.waitAll(ctx, evChurnDone)
	if err != nil {
		return res, err
	}
	sum, h := mergeEvents(evs)
	res.WallSec = max(float64(sum.DoneNs-rc.StartNs)/1e9, res.Seconds)
	res.Attempts, res.OK, res.DialErrs, res.SubErrs = sum.Attempts, sum.Churned, sum.ChurnDialErrs, sum.ChurnSubErrs
	res.ErrRate = float64(res.DialErrs+res.SubErrs) / float64(max(res.Attempts, 1))
	res.PerSec = float64(res.OK) / res.WallSec
	res.P50, res.P99, res.Max = ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Max())
	scheduled := int64(rc.Rate*cfg.Duration.Seconds()) * int64(k)
	res.ClientBound = res.Attempts < scheduled
	res.Sustained = res.PerSec >= 0.95*rate && res.ErrRate <= cfg.MaxErrRate &&
		time.Duration(h.Quantile(0.99)) <= cfg.P99Bound
	return res, nil
}

func printChurn(w io.Writer, r *churnReport) {
	fmt.Fprintf(w, "churn %s: connect + subscribe + ack + close, %d workers x %d in flight, urls %s\n",
		r.Proto, r.Workers, r.Conc, strings.Join(r.URLs, ","))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\ttarget/s\tattempts\tsubscribed\tupgrade errs\tsub errs\terr rate\tupgrades/s\tp50ms\tp99ms\tmaxms\tsustained\t")
	for _, s := range r.Steps {
		ok := "yes"
		if !s.Sustained {
			ok = "NO"
		}
		if s.ClientBound {
			ok += "(behind)"
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%d\t%d\t%d\t%d\t%.4f\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t\n", s.Step, s.TargetRate, s.Attempts, s.OK,
			s.DialErrs, s.SubErrs, s.ErrRate, s.PerSec, s.P50, s.P99, s.Max, ok)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "highest sustained: %.0f upgrades/s (>= 95%% of target, error rate <= limit, p99 <= %.0fms)", r.BestRate, r.P99BoundMs)
	if r.Stopped != "" {
		fmt.Fprintf(w, "; ramp stopped: %s", r.Stopped)
	}
	fmt.Fprintln(w)
}

func cmdChurn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg churnConfig
	var urls string
	var asJSON bool
	commonFlags(fs, &cfg.connConfig, &urls, &asJSON)
	churnFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.URLs, err = parseURLs(urls); err != nil {
		return err
	}
	rep, err := runChurn(ctx, cfg, stderr)
	if rep != nil && len(rep.Steps) > 0 {
		if asJSON {
			_ = writeJSON(stdout, rep)
		} else {
			printChurn(stdout, rep)
		}
	}
	return err
}

func churnFlags(fs *flag.FlagSet, cfg *churnConfig) {
	fs.Float64Var(&cfg.Rate, "rate", 1000, "connections per second (first step with --ramp)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "time per step")
	fs.IntVar(&cfg.Conc, "conc", 256, "connections in flight at most, per worker")
	fs.IntVar(&cfg.Sources, "sources", 64, "loopback source addresses (127.0.0.2...) to rotate over; 0: the kernel's choice")
	fs.StringVar(&cfg.Channel, "channel", "churn", "channel prefix")
	fs.IntVar(&cfg.Channels, "channels", 100, "connection n subscribes to <prefix>-<n % channels>")
	fs.BoolVar(&cfg.Ramp, "ramp", false, "raise the rate step by step until a step is not sustained")
	fs.Float64Var(&cfg.RampFactor, "ramp-factor", 1.25, "rate multiplier between ramp steps")
	fs.IntVar(&cfg.MaxSteps, "max-steps", 20, "most ramp steps")
	fs.DurationVar(&cfg.P99Bound, "p99-bound", 250*time.Millisecond, "highest acceptable p99 from dial to subscribe ack")
	fs.Float64Var(&cfg.MaxErrRate, "max-error-rate", 0.001, "highest acceptable fraction of failed attempts")
}
