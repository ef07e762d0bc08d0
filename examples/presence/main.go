// Command presence embeds meshcast in a Go service: three hubs clustered in
// one process (as three services would be on three hosts), which know who
// is online across the whole cluster from the hubs' events alone.
//
// Each node announces on the channel "presence" when one of its users
// connects or disconnects (OnConnect, OnDisconnect, broadcasting from the
// hook), and every node keeps the cluster-wide list with an in-process
// subscription to that channel. A user connected to any node sees the
// announcements as ordinary messages, except its own.
//
//	go run ./examples/presence
//
// then connect with ws://localhost:8090/ws?user=alice (8091, 8092 for the
// other nodes). A real service would authenticate users from a session or
// a token instead of the query string.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nodes, err := startCluster(ctx, []string{":8090", ":8091", ":8092"})
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range nodes {
		log.Printf("%s: ws://localhost%s/ws?user=alice", n.name, n.listen)
	}
	<-ctx.Done()
	for _, n := range nodes {
		n.stop()
	}
}

// startCluster starts one node per listen address on loopback, the first
// one the seed of the others, and returns once every node has joined.
func startCluster(ctx context.Context, listens []string) ([]*node, error) {
	var nodes []*node
	seed := ""
	for i, listen := range listens {
		n, err := startNode(ctx, "node-"+strconv.Itoa(i), listen, seed)
		if err != nil {
			for _, started := range nodes {
				started.stop()
			}
			return nil, err
		}
		nodes = append(nodes, n)
		seed = "127.0.0.1:" + strconv.Itoa(nodes[0].cluster.GossipPort())
	}
	for _, n := range nodes {
		if err := n.hub.Ready(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
	}
	return nodes, nil
}

// serve runs the node's HTTP server until it is shut down.
func serve(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
	}
}
