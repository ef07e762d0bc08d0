package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

type procSample struct{ RSSKiB, Threads int64 }

// readProcStatus reads VmRSS and Threads of a process from /proc.
func readProcStatus(pid int) (procSample, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procSample{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseProcStatus(b)
}

func parseProcStatus(b []byte) (procSample, error) {
	var s procSample
	var haveRSS, haveThreads bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "VmRSS:":
			s.RSSKiB, haveRSS = n, true // the kernel writes kB meaning KiB
		case "Threads:":
			s.Threads, haveThreads = n, true
		}
	}
	if !haveRSS || !haveThreads {
		return s, fmt.Errorf("status without VmRSS or Threads")
	}
	return s, nil
}

// clusterBytesSent sums bytes_sent over the peer links of every node's
// /api/cluster; unreachable nodes count zero.
func clusterBytesSent(ctx context.Context, urls []string) int64 {
	var total int64
	for _, u := range urls {
		var v struct {
			Links []struct {
				BytesSent int64 `json:"bytes_sent"`
			} `json:"links"`
		}
		if getJSON(ctx, u, &v) != nil {
			continue
		}
		for _, l := range v.Links {
			total += l.BytesSent
		}
	}
	return total
}

// statsGoroutines reads "goroutines" from a meshcast /api/stats URL; -1 if
// the server has no such endpoint or field (another server under test).
func statsGoroutines(ctx context.Context, url string) int64 {
	var v struct {
		Goroutines *int64 `json:"goroutines"`
	}
	if getJSON(ctx, url, &v) != nil || v.Goroutines == nil {
		return -1
	}
	return *v.Goroutines
}

// getJSON fetches and decodes one JSON document, within 3s.
func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No keep-alive: a pooled connection would outlive the run.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(v)
}
