package hub

import "github.com/meshcast/meshcast/transport"

// events holds the hooks of Config, each optional.
type events struct {
	onConnect     func(*Client)
	onDisconnect  func(*Client, *transport.CloseError)
	onSubscribe   func(*Client, string)
	onUnsubscribe func(*Client, string)
}

func newEvents(cfg *Config) events {
	return events{cfg.OnConnect, cfg.OnDisconnect, cfg.OnSubscribe, cfg.OnUnsubscribe}
}

func (e events) connected(c *Client) {
	if e.onConnect != nil {
		e.onConnect(c)
	}
}

func (e events) disconnected(c *Client, reason *transport.CloseError) {
	if e.onDisconnect != nil {
		e.onDisconnect(c, reason)
	}
}

func (e events) subscribed(c *Client, ch string) {
	if e.onSubscribe != nil {
		e.onSubscribe(c, ch)
	}
}

func (e events) unsubscribed(c *Client, ch string) {
	if e.onUnsubscribe != nil {
		e.onUnsubscribe(c, ch)
	}
}
