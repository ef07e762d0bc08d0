package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestChurnEndToEnd(t *testing.T) {
	for _, proto := range []string{"v1", "socketio"} {
		t.Run(proto, func(t *testing.T) {
			f := newFakeServer(t, nil)
			cc := testConn(f.URL)
			if proto == "socketio" {
				cc = testConn(strings.TrimSuffix(f.URL, "/ws"))
			}
			cc.Proto = proto
			cfg := churnConfig{connConfig: cc, Rate: 200, Duration: time.Second, Sources: 4, Channels: 3}
			rep, err := runChurn(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Steps) != 1 || rep.Workers != 2 {
				t.Fatalf("report %+v", rep)
			}
			s := rep.Steps[0]
			if s.Attempts != 200 || s.OK != 200 || s.DialErrs != 0 || s.SubErrs != 0 || s.ErrRate != 0 {
				t.Fatalf("step %+v", s)
			}
			// The rate is measured, not assumed: OK over the wall time, never
			// above the target. Whether it was sustained depends on how busy
			// the machine is, so the test checks the verdict matches the
			// figures, not the figures themselves.
			if s.PerSec <= 0 || s.PerSec > 201 || math.Abs(s.PerSec-float64(s.OK)/s.WallSec) > 0.01 || s.P50 <= 0 || s.P99 < s.P50 {
				t.Fatalf("step %+v", s)
			}
			cfg.defaults()
			want := s.PerSec >= 0.95*200 && s.ErrRate <= cfg.MaxErrRate && s.P99 <= rep.P99BoundMs
			if s.Sustained != want {
				t.Fatalf("sustained=%v but the figures say %v: %+v", s.Sustained, want, s)
			}
			if s.Sustained && rep.BestRate != s.PerSec {
				t.Fatalf("best %v, step %v", rep.BestRate, s.PerSec)
			}
			// Every connection was closed by the bench, and the dials were
			// spread over the four loopback source addresses.
			waitFor(t, 5*time.Second, func() bool { return f.count() == 0 })
			_, sources := f.stats()
			if len(sources) != 4 || sources["127.0.0.2"] != 50 || sources["127.0.0.5"] != 50 {
				t.Fatalf("sources %v", sources)
			}
		})
	}
}

func TestChurnRampStopsOnErrors(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.errEvery = 20 })
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"churn", "--urls", f.URL, "--rate", "100", "--duration", "1s",
		"--ramp", "--ramp-factor", "2", "--workers", "2", "--sources", "0", "--json", "--quiet"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep churnReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Steps) != 1 || rep.Stopped != "not sustained" || rep.BestRate != 0 {
		t.Fatalf("report %+v", rep)
	}
	if s := rep.Steps[0]; s.SubErrs != 5 || s.OK != 95 || s.Sustained {
		t.Fatalf("step %+v", s)
	}
	var table bytes.Buffer
	printChurn(&table, &rep)
	if !strings.Contains(table.String(), "highest sustained: 0 upgrades/s") {
		t.Fatalf("table: %s", table.String())
	}
}

func TestChurnSource(t *testing.T) {
	cases := []struct {
		url     string
		n, srcs int
		want    string
	}{
		{"ws://127.0.0.1:8080/ws", 0, 4, "127.0.0.2"},
		{"ws://127.0.0.1:8080/ws", 7, 4, "127.0.0.5"},
		{"ws://127.0.0.1:8080/ws", 7, 0, ""},
		{"ws://10.0.0.1:8080/ws", 7, 4, ""},
		{"ws://[::1]:8080/ws", 7, 4, ""},
		{"ws://127.0.0.1:8080/ws", 1000, 999, "127.0.0.243"}, // capped at 253 addresses
	}
	for _, c := range cases {
		got := ""
		if a := churnSource(c.url, c.n, c.srcs); a != nil {
			got = a.IP.String()
		}
		if got != c.want {
			t.Errorf("churnSource(%s, %d, %d) = %q, want %q", c.url, c.n, c.srcs, got, c.want)
		}
	}
}

func TestFanoutPubURLs(t *testing.T) {
	f := newFakeServer(t, nil)
	cfg := fanoutConfig{connConfig: testConn(f.URL), PubURLs: []string{f.URL + "?pub"}, Subs: 6, Pubs: 2, Rate: 40,
		Size: 64, Duration: time.Second, Drain: 2 * time.Second}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Steps[0]; s.Received != 6*40 || s.Lost != 0 {
		t.Fatalf("step %+v", s)
	}
	queries, _ := f.stats()
	if queries["pub"] != 2 || queries[""] != 6 {
		t.Fatalf("upgrades by query %v", queries)
	}
}
