package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/meshcast/meshcast/internal/wait"
)

// TestFloodAttacksRun: every attack starts, opens connections to (or
// sends packets at) a listener, and stops with its context.
func TestFloodAttacksRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a target that closes everything at once
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, io.LimitReader(c, 1))
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	target := floodTarget{http: addr, gossip: addr, peer: addr, label: "meshcast"}
	for _, k := range attacks {
		ctx, cancel := context.WithCancel(context.Background())
		a, err := startAttack(ctx, k.name, target, attackConfig{Conc: 2, Rate: 200, Addrs: 1})
		if err != nil {
			t.Fatal(err)
		}
		wait.For(t, 10*time.Second, k.name+" under way", func() bool { return a.stats.opened.Load() > 0 })
		cancel()
		a.wait()
	}
	if _, err := startAttack(context.Background(), "nope", target, attackConfig{}); err == nil {
		t.Fatal("unknown attack accepted")
	}
}
