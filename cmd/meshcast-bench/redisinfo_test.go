package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const infoSample = "# Stats\r\ntotal_connections_received:12\r\ntotal_net_input_bytes:1187\r\n" +
	"total_net_output_bytes:1262\r\ntotal_net_repl_input_bytes:0\r\n"

func TestParseRedisNet(t *testing.T) {
	r, err := parseRedisNet([]byte(infoSample))
	if err != nil || r.In != 1187 || r.Out != 1262 || r.total() != 2449 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := parseRedisNet([]byte("# Stats\r\ntotal_net_input_bytes:1\r\n")); !errors.Is(err, errRedisReply) {
		t.Fatalf("missing output bytes: %v", err)
	}
}

// fakeRedis answers every INFO with counters that grow by step per call.
type fakeRedis struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	n    int64
}

func newFakeRedis(t *testing.T, step int64) *fakeRedis {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRedis{addr: ln.Addr().String(), ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				for range 5 { // *2 $4 INFO $5 stats
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
				}
				r.mu.Lock()
				r.n++
				in, out := 1000+r.n*step, 5000+2*r.n*step
				r.mu.Unlock()
				body := fmt.Sprintf("# Stats\r\ntotal_net_input_bytes:%d\r\ntotal_net_output_bytes:%d\r\n", in, out)
				fmt.Fprintf(nc, "$%d\r\n%s\r\n", len(body), body)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); r.wg.Wait() })
	return r
}

func TestReadRedisNet(t *testing.T) {
	r := newFakeRedis(t, 100)
	a, err := readRedisNet(context.Background(), r.addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readRedisNet(context.Background(), r.addr)
	if err != nil {
		t.Fatal(err)
	}
	if a.In != 1100 || a.Out != 5200 || b.total()-a.total() != 300 {
		t.Fatalf("%+v %+v", a, b)
	}
	if _, err := readRedisNet(context.Background(), "127.0.0.1:1"); err == nil {
		t.Fatal("no error from a closed port")
	}
}

func TestRoomsRedisCrossBytes(t *testing.T) {
	f := newFakeServer(t, nil)
	r := newFakeRedis(t, 1000) // each reading adds 3000 bytes
	cfg := fanoutConfig{connConfig: testConn(f.URL), Pubs: 2, Rate: 50, Size: 64, Duration: time.Second,
		Drain: 2 * time.Second, Channel: "room", Rooms: 5, RoomSize: 2, Subs: 10, RedisAddr: r.addr}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Steps[0]
	if s.Received != 100 || s.CrossBytes != 3000 || s.CrossPerDel != 30 || s.CrossPerPub != 60 {
		t.Fatalf("step %+v", s)
	}
}

func TestReadBulkRejects(t *testing.T) {
	for _, in := range []string{"-ERR no\r\n", "$-1\r\n", "$99999999\r\n", "$5\r\nab", "+OK\r\n"} {
		if _, err := readBulk(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readBulk(%q) accepted", in)
		}
	}
}

func FuzzRedisInfo(f *testing.F) {
	whole := fmt.Sprintf("$%d\r\n%s\r\n", len(infoSample), infoSample)
	f.Add([]byte(whole))
	f.Add([]byte(whole[:len(whole)/2]))
	f.Add([]byte("$0\r\n\r\n"))
	f.Add([]byte("-ERR unknown\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := readBulk(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		if r, err := parseRedisNet(body); err == nil && !bytes.Contains(body, []byte("total_net_input_bytes:")) {
			t.Fatalf("parsed %+v without the field", r)
		}
	})
}
