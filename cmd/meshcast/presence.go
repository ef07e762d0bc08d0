package main

import (
	"fmt"

	"github.com/meshcast/meshcast/hub"
)

// presenceOption reads the namespace keys of presence, in the flag's
// syntax (presence=on) and the config file's (presence: on): presence and
// join_leave, each on or off (true and false work too). Any other key is
// an error naming the keys there are.
func presenceOption(ns *hub.Namespace, key, val string) error {
	var dst *bool
	switch key {
	case "presence":
		dst = &ns.Presence
	case "join_leave":
		dst = &ns.JoinLeave
	default:
		return fmt.Errorf("unknown key %q (want subscribe, publish, origins, history, history_ttl, presence or join_leave)", key)
	}
	switch val {
	case "on", "true":
		*dst = true
	case "off", "false":
		*dst = false
	default:
		return fmt.Errorf("%s=%q: want on or off", key, val)
	}
	return nil
}
