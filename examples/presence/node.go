package main

import (
	"context"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport"
)

// node is one service instance: its hub, its cluster and its view of who
// is online.
type node struct {
	name    string
	listen  string
	hub     *hub.Hub
	cluster *cluster.Cluster
	http    *http.Server
	served  chan struct{}
	online  *online
}

// presenceChannel carries the announcements every node makes.
const presenceChannel = "presence"

// announcement is what a node publishes on presenceChannel.
type announcement struct {
	User   string `json:"user"`
	Online bool   `json:"online"`
	Node   string `json:"node"`
}

func startNode(ctx context.Context, name, listen, seed string) (*node, error) {
	ccfg := cluster.Config{NodeName: name, GossipAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		Secret: []byte("one secret for every node of the example")}
	if seed != "" {
		ccfg.Join = []string{seed}
	}
	cl, err := cluster.New(ccfg)
	if err != nil {
		return nil, err
	}
	n := &node{name: name, cluster: cl, online: newOnline(), served: make(chan struct{})}
	n.hub, err = hub.New(hub.Config{
		Cluster:       cl,
		Authenticator: hub.AuthenticatorFunc(userFromQuery),
		OnConnect:     func(c *hub.Client) { n.announce(c, true) },
		OnDisconnect:  func(c *hub.Client, _ *transport.CloseError) { n.announce(c, false) },
	})
	if err != nil {
		return nil, err // hub.New released the cluster
	}
	if _, err := n.hub.Subscribe(ctx, presenceChannel, n.online.apply); err != nil {
		n.hub.Shutdown(context.Background())
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1"+listen)
	if err != nil {
		n.hub.Shutdown(context.Background())
		return nil, err
	}
	n.listen = ":" + portOf(ln)
	mux := http.NewServeMux()
	mux.Handle("/ws", n.hub)
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(n.served)
		serve(n.http, ln)
	}()
	return n, nil
}

// userFromQuery is a demo Authenticator: the user names itself.
func userFromQuery(r *http.Request) (hub.Identity, error) {
	user := r.URL.Query().Get("user")
	if user == "" {
		return hub.Identity{}, &hub.Error{Code: http.StatusUnauthorized, Reason: "add ?user=<name>"}
	}
	return hub.Identity{User: user}, nil
}

// announce tells the whole cluster that a user of this node came or went;
// the client itself is left out, it knows.
func (n *node) announce(c *hub.Client, online bool) {
	data, _ := json.Marshal(announcement{User: c.User(), Online: online, Node: n.name})
	if err := n.hub.Publish(context.Background(), presenceChannel, data, hub.Except(c.ID())); err != nil {
		log.Printf("%s: announce %s: %v", n.name, c.User(), err)
	}
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.http.Shutdown(ctx)
	n.hub.Shutdown(ctx) // its clients, then the cluster
	<-n.served
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// online is a node's view of the users connected anywhere in the cluster,
// kept from the announcements (a user counted once per connection).
type online struct {
	mu      sync.Mutex
	conns   map[string]int
	changed chan struct{} // closed and replaced on every change
}

func newOnline() *online {
	return &online{conns: map[string]int{}, changed: make(chan struct{})}
}

// apply is the in-process subscriber of presenceChannel.
func (o *online) apply(m hub.Message) {
	var a announcement
	if m.Gap || json.Unmarshal(m.Data, &a) != nil {
		return // a real service would rebuild its list here
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if a.Online {
		o.conns[a.User]++
	} else if o.conns[a.User]--; o.conns[a.User] <= 0 {
		delete(o.conns, a.User)
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// users lists who is online, and a channel closed at the next change.
func (o *online) users() ([]string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for u := range o.conns {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, o.changed
}

// waitFor returns the users once want(users) holds, or what it has when
// ctx ends.
func (o *online) waitFor(ctx context.Context, want func([]string) bool) []string {
	for {
		users, changed := o.users()
		if want(users) {
			return users
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return users
		}
	}
}
