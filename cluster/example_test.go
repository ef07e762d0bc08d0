package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
)

// startNode is what a Go service writes to run a clustered hub: a cluster
// (ports bound, not joined yet) handed to the hub, which starts it.
func startNode(name string, join ...string) (*hub.Hub, *cluster.Cluster, *httptest.Server) {
	ccfg := cluster.DefaultConfig()
	ccfg.NodeName = name
	ccfg.GossipAddr = "127.0.0.1:0" // a real service keeps the default :7946
	ccfg.PeerAddr = "127.0.0.1:0"
	ccfg.Join = join
	ccfg.Secret = []byte("shared by every node")
	cl, err := cluster.New(ccfg)
	if err != nil {
		panic(err)
	}
	h, err := hub.New(hub.Config{Cluster: cl})
	if err != nil {
		panic(err)
	}
	return h, cl, httptest.NewServer(h)
}

// Two hubs in one process form a cluster; a publish on one reaches a
// WebSocket subscriber of the other.
func Example() {
	hubA, clA, srvA := startNode("a")
	hubB, _, srvB := startNode("b", "127.0.0.1:"+strconv.Itoa(clA.GossipPort()))
	defer func() {
		srvA.Close()
		srvB.Close()
		hubA.Shutdown(context.Background()) // closes its clients, then leaves the cluster
		hubB.Shutdown(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hubB.Ready(ctx); err != nil { // b has joined a and linked with it
		panic(err)
	}

	// A browser connected to node b subscribes...
	conn, br, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srvB.URL, "http"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	rw := struct {
		io.Reader
		io.Writer
	}{conn, conn}
	if br != nil { // frames that came with the handshake response
		rw.Reader = io.MultiReader(br, conn)
	}
	wsutil.ReadServerText(rw) // hello
	wsutil.WriteClientText(conn, []byte(`{"op":"sub","ch":"orders","id":1}`))
	ack, _ := wsutil.ReadServerText(rw)
	fmt.Println(string(ack))

	// ...and a Go service on node a publishes.
	hubA.Publish(context.Background(), "orders", []byte(`{"id":42,"state":"shipped"}`))
	msg, _ := wsutil.ReadServerText(rw)
	fmt.Println(string(msg))
	// Output:
	// {"op":"ack","id":1}
	// {"op":"msg","ch":"orders","data":{"id":42,"state":"shipped"}}
}
