package main

import "fmt"

// checkReader refuses an unknown --reader, or epoll where there is none.
func checkReader(r string) error {
	switch {
	case r == readerEpoll && !rawReadSupported:
		return fmt.Errorf("--reader epoll needs Linux")
	case r != readerEpoll && r != "goroutine" && r != "":
		return fmt.Errorf("--reader %q: want goroutine or epoll", r)
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
