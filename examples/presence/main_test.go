package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(settled{m})
}

// settled runs the tests, then gives memberlist's last probe of a peer
// time to end: it waits out its probe timeout (500 ms with the default
// timings this example uses, and longer on a busy machine) even after
// Shutdown, longer than goleak's own retries wait. A real leak is still
// there after 10 s, and reported.
type settled struct{ m *testing.M }

func (s settled) Run() int {
	code := s.m.Run()
	for deadline := time.Now().Add(10 * time.Second); goleak.Find() != nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	return code
}

// Three nodes in one process; bob on node-2 hears alice come and go on
// node-0, and node-1, which neither of them uses, knows who is online.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startCluster(ctx, []string{":0", ":0", ":0"})
	if err != nil {
		panic(err)
	}
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	url := func(n *node, user string) string { return "ws://127.0.0.1" + n.listen + "/ws?user=" + user }

	bob, err := client.Dial(ctx, url(nodes[2], "bob"))
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	heard, err := bob.Subscribe(ctx, presenceChannel)
	if err != nil {
		panic(err)
	}
	nodes[1].online.waitFor(ctx, func(u []string) bool { return slices.Equal(u, []string{"bob"}) })

	alice, err := client.Dial(ctx, url(nodes[0], "alice"))
	if err != nil {
		panic(err)
	}
	fmt.Println("bob hears:", string((<-heard.C).Data))
	fmt.Println("node-1 knows:", nodes[1].online.waitFor(ctx, func(u []string) bool { return len(u) == 2 }))

	alice.Close()
	fmt.Println("bob hears:", string((<-heard.C).Data))
	fmt.Println("node-1 knows:", nodes[1].online.waitFor(ctx, func(u []string) bool { return len(u) == 1 }))
	// Output:
	// bob hears: {"user":"alice","online":true,"node":"node-0"}
	// node-1 knows: [alice bob]
	// bob hears: {"user":"alice","online":false,"node":"node-0"}
	// node-1 knows: [bob]
}
