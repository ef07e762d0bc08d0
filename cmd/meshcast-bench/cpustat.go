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

// checkArrival refuses an unknown --arrival, or kernel timestamps with a
// reader that cannot ask for them.
func checkArrival(a, reader string) error {
	switch {
	case a == arrivalKernel && reader != readerEpoll && reader != readerUring:
		return fmt.Errorf("--arrival kernel needs --reader epoll or uring")
	case a != arrivalKernel && a != "read" && a != "":
		return fmt.Errorf("--arrival %q: want read or kernel", a)
	}
	return nil
}

// checkReaderIdle refuses --reader-idle without a poll loop to run idle.
func checkReaderIdle(idle bool, reader string) error {
	if idle && reader != readerEpoll && reader != readerUring {
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
