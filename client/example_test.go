package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/meshcast/meshcast/client"
)

// A subscriber and a publisher. The client reconnects, resubscribes and
// recovers by itself; a Message with Gap set says when messages may have
// been missed.
func Example() {
	url, stop := client.ExampleNode()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "chat:lobby")
	if err != nil {
		panic(err)
	}
	if err := c.Publish(ctx, "chat:lobby", []byte(`{"text":"hi"}`)); err != nil {
		panic(err) // an *client.Error with Code 503: not published, try later
	}
	m := <-sub.C
	if m.Gap {
		fmt.Println("some messages may be missing:", m.Reason)
	}
	fmt.Println(m.Channel, string(m.Data))
	// Output: chat:lobby {"text":"hi"}
}
