package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// workerEnv marks a re-executed worker process; its value is the worker id.
// An environment variable rather than only an argument lets a test binary
// (whose flags belong to the testing package) become a worker too.
const workerEnv = "MESHCAST_BENCH_WORKER"

var errWorkerExited = errors.New("worker exited")

type workerProc struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	last  event // latest stat-carrying event
	done  bool  // the awaited event arrived
}

type workerEvent struct {
	ev  event
	err error // non-nil: the worker's output ended
	id  int
}

// coord starts worker processes and runs the command/event exchange with
// them. All methods are called from one goroutine; the per-worker reader
// goroutines only feed events.
type coord struct {
	workers  []*workerProc
	events   chan workerEvent
	readers  sync.WaitGroup
	progress func(c *coord) // called about once a second while waiting
	lastProg time.Time
}

// startWorkers re-executes this binary k times as workers.
func startWorkers(k int, stderr io.Writer) (*coord, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	c := &coord{events: make(chan workerEvent, 64*k)}
	for i := range k {
		cmd := exec.Command(exe, "worker")
		cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(i))
		cmd.Stderr = stderr
		setDeathSignal(cmd, syscall.SIGKILL)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			c.close()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		c.workers = append(c.workers, &workerProc{id: i, cmd: cmd, stdin: stdin})
		c.readers.Add(1)
		go c.readEvents(i, stdout)
	}
	return c, nil
}

func (c *coord) readEvents(id int, r io.Reader) {
	defer c.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a stray line is not worth the run
		}
		e.Worker = id
		c.events <- workerEvent{ev: e, id: id}
	}
	err := sc.Err()
	if err == nil {
		err = errWorkerExited
	}
	c.events <- workerEvent{err: err, id: id}
}

func (c *coord) send(id int, cmd command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	_, err = c.workers[id].stdin.Write(append(b, '\n'))
	if err != nil {
		return fmt.Errorf("worker %d: %w", id, err)
	}
	return nil
}

func (c *coord) broadcast(cmd command) error {
	for i := range c.workers {
		if err := c.send(i, cmd); err != nil {
			return err
		}
	}
	return nil
}

// waitAll waits until every worker has sent an event of kind ev and
// returns those events, calling the progress callback about once a
// second. A worker exiting or a fatal event fails the wait.
func (c *coord) waitAll(ctx context.Context, ev string) ([]event, error) {
	out := make([]event, len(c.workers))
	for _, w := range c.workers {
		w.done = false
	}
	pending := len(c.workers)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for pending > 0 {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", ev, ctx.Err())
		case <-tick.C:
			c.maybeProgress()
		case we := <-c.events:
			if we.err != nil {
				return nil, fmt.Errorf("worker %d: %w", we.id, we.err)
			}
			if we.ev.Ev == evFatal {
				return nil, fmt.Errorf("worker %d: %s", we.id, we.ev.Err)
			}
			w := c.workers[we.id]
			w.last = we.ev
			if we.ev.Ev == ev && !w.done {
				w.done = true
				out[we.id] = we.ev
				pending--
			}
		}
	}
	c.maybeProgress()
	return out, nil
}

// poll asks every worker for a fresh stat and waits for the answers.
func (c *coord) poll(ctx context.Context) ([]event, error) {
	if err := c.broadcast(command{Cmd: cmdStat}); err != nil {
		return nil, err
	}
	return c.waitAll(ctx, evStat)
}

func (c *coord) maybeProgress() {
	if c.progress != nil && time.Since(c.lastProg) >= time.Second {
		c.lastProg = time.Now()
		c.progress(c)
	}
}

// latest merges the last event of every worker.
func (c *coord) latest() (sum event, h *Hist) {
	evs := make([]event, len(c.workers))
	for i, w := range c.workers {
		evs[i] = w.last
	}
	return mergeEvents(evs)
}

// close asks the workers to quit, gives them a moment to close their
// connections, then kills whatever is left and reaps everything.
func (c *coord) close() {
	for i, w := range c.workers {
		_ = c.send(i, command{Cmd: cmdQuit})
		_ = w.stdin.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range c.workers {
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			_ = w.cmd.Process.Kill()
			<-done
		}
	}
	// Drain events so the readers can finish.
	go func() { c.readers.Wait(); close(c.events) }()
	for range c.events {
	}
}

// mergeEvents sums workers' counters and histograms.
func mergeEvents(evs []event) (sum event, h *Hist) {
	h = new(Hist)
	for _, e := range evs {
		sum.Subs += e.Subs
		sum.Connected += e.Connected
		sum.Acked += e.Acked
		sum.DialErrs += e.DialErrs
		sum.SubErrs += e.SubErrs
		sum.Disconnects += e.Disconnects
		sum.Received += e.Received
		sum.Dups += e.Dups
		sum.Reordered += e.Reordered
		sum.Lost += e.Lost
		sum.Foreign += e.Foreign
		sum.Published += e.Published
		sum.PubAcks += e.PubAcks
		sum.PubErrs += e.PubErrs
		sum.Attempts += e.Attempts
		sum.Churned += e.Churned
		sum.ChurnDialErrs += e.ChurnDialErrs
		sum.ChurnSubErrs += e.ChurnSubErrs
		sum.DoneNs = max(sum.DoneNs, e.DoneNs)
		sum.Unstamped += e.Unstamped
		sum.Coalesced += e.Coalesced
		h.mergeJSON(e.Hist)
	}
	return sum, h
}

// mergeHists merges one of the workers' extra histograms, the one of
// picks (the read-time one with --arrival kernel, the per-node ones);
// nil when no worker sent it.
func mergeHists(evs []event, of func(*event) *histJSON) *Hist {
	var h *Hist
	for i := range evs {
		if j := of(&evs[i]); j != nil {
			if h == nil {
				h = new(Hist)
			}
			h.mergeJSON(j)
		}
	}
	return h
}
