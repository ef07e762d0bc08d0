package main

import (
	"fmt"

	"github.com/meshcast/meshcast/transport/uring"
)

// checkReader refuses an unknown --reader, or epoll or uring where there
// is none.
func checkReader(r string) error {
	switch {
	case (r == readerEpoll || r == readerUring) && !rawReadSupported:
		return fmt.Errorf("--reader %s needs Linux", r)
	case r == readerUring:
		ring, err := uring.New(4)
		if err != nil {
			return fmt.Errorf("--reader uring: %w", err)
		}
		ring.Close()
	case r != readerEpoll && r != "goroutine" && r != "":
		return fmt.Errorf("--reader %q: want goroutine, epoll or uring", r)
	}
	return nil
}

// checkReadOptions is checkReader, then refuses an unknown --arrival, and
// kernel timestamps or --reader-idle without a poll loop to do them.
func checkReadOptions(cc connConfig) error {
	if err := checkReader(cc.Reader); err != nil {
		return err
	}
	polled := cc.Reader == readerEpoll || cc.Reader == readerUring
	switch {
	case cc.Arrival != arrivalKernel && cc.Arrival != "read" && cc.Arrival != "":
		return fmt.Errorf("--arrival %q: want read or kernel", cc.Arrival)
	case cc.Arrival == arrivalKernel && !polled:
		return fmt.Errorf("--arrival kernel needs --reader epoll or uring")
	case cc.ReaderIdle && !polled:
		return fmt.Errorf("--reader-idle needs --reader epoll or uring")
	}
	return nil
}

// cpuOf sums the CPU time (procCPU, flood.go) of pids in seconds; ok is
// false when there are none.
func cpuOf(pids []int) (sec float64, ok bool) {
	for _, p := range pids {
		sec += procCPU(p).Seconds()
	}
	return sec, len(pids) > 0
}

// workerPIDs lists the load tool's worker processes.
func (c *coord) workerPIDs() []int {
	var pids []int
	for _, w := range c.workers {
		if w.cmd.Process != nil {
			pids = append(pids, w.cmd.Process.Pid)
		}
	}
	return pids
}
