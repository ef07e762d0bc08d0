package transport

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	d := DefaultConfig()
	got, err := Config{}.withDefaults()
	if err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if got.Logger == nil {
		t.Fatal("zero Config: nil Logger")
	}
	got.Logger, d.Logger = nil, nil
	if got != d {
		t.Fatalf("zero Config got %+v, want DefaultConfig %+v", got, d)
	}

	set := testConfig(true)
	got, err = set.withDefaults()
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	got.Logger = nil
	if got != set {
		t.Fatalf("set fields changed: %+v, want %+v", got, set)
	}
}

func TestWithDefaultsRefusesNegative(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*Config){
		"MaxMessageSize":   func(c *Config) { c.MaxMessageSize = -1 },
		"WriteQueueSize":   func(c *Config) { c.WriteQueueSize = -1 },
		"PingInterval":     func(c *Config) { c.PingInterval = -time.Second },
		"WriteTimeout":     func(c *Config) { c.WriteTimeout = -time.Second },
		"HandshakeTimeout": func(c *Config) { c.HandshakeTimeout = -1 },
		"CloseLinger":      func(c *Config) { c.CloseLinger = -time.Second },
		"Workers":          func(c *Config) { c.Workers = -4 },
		"Writers":          func(c *Config) { c.Writers = -1 },
	}
	all := Config{}
	for field, set := range cases {
		var cfg Config
		set(&cfg)
		set(&all)
		if _, err := cfg.withDefaults(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("negative %s: %v, want ErrInvalidConfig naming it", field, err)
		}
		if srv, err := NewServer(cfg); !errors.Is(err, ErrInvalidConfig) || srv != nil {
			t.Errorf("NewServer with negative %s: %v, %v, want ErrInvalidConfig", field, srv, err)
		}
	}
	_, err := all.withDefaults()
	for field := range cases {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("all negative: %v does not name %s", err, field)
		}
	}
}
