package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// A low rate spread over several publishers schedules whole messages per
// publisher; that must not count as the client falling behind.
func TestFillStepClientBound(t *testing.T) {
	cfg := fanoutConfig{Pubs: 3, Duration: 5 * time.Second, P99Bound: 250 * time.Millisecond}
	h := new(Hist)
	h.Record(uint64(time.Millisecond))
	for _, c := range []struct {
		rate      float64
		published int64
		bound     bool
	}{
		{2, 9, false}, // 3 x floor(0.67*5) = 9 scheduled
		{2, 8, true},  // below 95% of 9
		{300, 1500, false},
		{300, 1400, true},
	} {
		res := stepResult{TargetRate: c.rate, Published: c.published, WallSec: 5}
		fillStep(&res, event{Received: 10}, h, cfg)
		if res.ClientBound != c.bound {
			t.Errorf("rate %v published %d: client-bound %v", c.rate, c.published, res.ClientBound)
		}
	}
}

// A step failing on p99 alone is measured again once before the ramp stops.
func TestRampRetriesP99Failure(t *testing.T) {
	f := newFakeServer(t, nil)
	cfg := fanoutConfig{connConfig: testConn(f.URL), Subs: 4, Pubs: 1, Rate: 20, Size: 64, Duration: 500 * time.Millisecond,
		Drain: time.Second, Ramp: true, P99Bound: time.Nanosecond, Retries: 1}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 2 || rep.Steps[1].TargetRate != 20 || rep.Stopped != "p99 over bound" || rep.BestRate != 0 {
		t.Fatalf("report %+v", rep)
	}
}
