package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress prints the live status line on stderr: rewritten in place on a
// terminal, one line per second otherwise (logs stay readable).
type progress struct {
	w     io.Writer
	quiet bool
	tty   bool
	total int
	start time.Time

	churn    bool // churn steps: attempts and upgrades/s rather than deliveries
	step     int
	rate     float64
	lastRecv int64
	lastAt   time.Time
	printed  bool
}

func newProgress(w io.Writer, quiet bool, total int) *progress {
	p := &progress{w: w, quiet: quiet, total: total, start: time.Now(), lastAt: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) setStep(step int, rate float64) {
	p.step, p.rate, p.lastRecv, p.lastAt = step, rate, 0, time.Now()
}

func (p *progress) print(c *coord) {
	if p.quiet {
		return
	}
	sum, h := c.latest()
	now := time.Now()
	dt := now.Sub(p.lastAt).Seconds()
	rate := 0.0
	if dt > 0 && sum.Received >= p.lastRecv {
		rate = float64(sum.Received-p.lastRecv) / dt
	}
	p.lastRecv, p.lastAt = sum.Received, now
	if p.churn {
		p.printLine(fmt.Sprintf("%6.1fs step %d @%.0f/s attempts %d subscribed %d errs %d p99 %.2fms",
			now.Sub(p.start).Seconds(), p.step, p.rate, sum.Attempts, sum.Churned,
			sum.ChurnDialErrs+sum.ChurnSubErrs, ms(h.Quantile(0.99))))
		return
	}
	line := fmt.Sprintf("%6.1fs connected %d/%d acked %d errs %d", now.Sub(p.start).Seconds(),
		sum.Connected, p.total, sum.Acked, sum.DialErrs+sum.SubErrs+sum.Disconnects)
	if p.step > 0 {
		line += fmt.Sprintf(" | step %d @%.0f/s deliveries/s %.0f lost %d p99 %.2fms",
			p.step, p.rate, rate, sum.Lost, ms(h.Quantile(0.99)))
	}
	p.printLine(line)
}

func (p *progress) printLine(line string) {
	p.printed = true
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// done ends an in-place line so the report starts on a fresh line.
func (p *progress) done() {
	if p.tty && p.printed {
		fmt.Fprintln(p.w)
	}
}
