package main

import "flag"

// securityConfig holds the flags of connection auth, channel permissions,
// limits and the server API.
type securityConfig struct{}

func (s *securityConfig) register(fs *flag.FlagSet) {}

func (s *securityConfig) validate() error { return nil }
