package main

import "flag"

// tlsConfig holds the TLS flags of the client listener and the peer links.
type tlsConfig struct{}

func (t *tlsConfig) register(fs *flag.FlagSet) {}

func (t *tlsConfig) validate() error { return nil }
