package client

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Unsubscribe and Subscribe of one channel racing from two goroutines:
// whichever wins, the server must end up as the client thinks. The unsub
// used to be written after the state changed, with no order against a
// sub: a sub of the new subscription could reach the server first (acked
// as "already subscribed"), then the old one's unsub removed it, and the
// new subscription received nothing: a silent loss.
func TestUnsubscribeSubscribeRace(t *testing.T) {
	h := startHub(t, "h1")
	c := connect(t, testConfig(h.URL))
	ctl := subscribe(t, c, "ctl")
	ctx := context.Background()
	for i := range 300 {
		ch := "race:" + strconv.Itoa(i)
		old := subscribe(t, c, ch)
		var s *Subscription
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); old.Unsubscribe() }()
		go func() {
			defer wg.Done()
			for s == nil { // ErrDuplicate until the Unsubscribe took the channel
				var err error
				if s, err = c.Subscribe(ctx, ch); err != nil && err != ErrDuplicate {
					t.Error(err)
					return
				}
			}
		}()
		wg.Wait()
		if s == nil {
			t.FailNow()
		}
		// One connection, one publisher: ctl's message comes after ch's.
		h.publish(t, ch, `"x"`)
		h.publish(t, "ctl", strconv.Itoa(i))
		if m := next(t, ctl); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("ctl: %+v", m)
		}
		select {
		case m := <-s.C:
			if string(m.Data) != `"x"` {
				t.Fatalf("iteration %d: got %+v", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: the subscription acked after the race receives nothing", i)
		}
		s.Unsubscribe()
	}
}

// Subscribe, Unsubscribe, Publish, reconnects and Close at once, under
// -race: every call returns, with nil or an error that says why, and
// Close leaves no goroutine behind (goleak, TestMain).
func TestEverythingAtOnce(t *testing.T) {
	h := startHub(t, "h1")
	p := startProxy(t, h.srv.Listener.Addr().String())
	for round := range 5 {
		var ev events
		cfg := testConfig(p.URL)
		cfg.OnEvent = ev.on
		c := connect(t, cfg)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ch := "all:" + strconv.Itoa((g+i)%3)
					s, err := c.Subscribe(ctx, ch, WithCallback(func(Message) {
						_ = c.Publish(ctx, "all:echo", []byte(`1`))
					}))
					if err == nil {
						_ = c.Publish(ctx, ch, []byte(strconv.Itoa(i)))
						s.Unsubscribe()
					}
				}
			}()
		}
		waitFor(t, 5*time.Second, "some traffic", func() bool { return h.hub.Stats().Publishes > uint64(50*(round+1)) })
		p.cut()
		waitFor(t, 5*time.Second, "a reconnect", func() bool { return len(ev.of(EventConnected)) >= 2 })
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		close(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		wg.Wait()
	}
}
