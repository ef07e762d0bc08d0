package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// config is everything the flags (or their MESHCAST_* environment
// equivalents) set.
type config struct {
	listen           string
	maxMessage       int
	maxData          int
	maxSubscriptions int
	writeQueue       int
	pingInterval     time.Duration
	allowedOrigins   string
	drainTimeout     time.Duration
	logFormat        string
	logLevel         string
	pprof            bool
	metricsListen    string
	gcPercent        int
	ioURing          bool

	name        string
	gossip      string
	peer        string
	advertise   string
	join        string
	secret      string
	secretFile  string
	clusterName string

	joinTimeout       time.Duration
	reconnectInterval time.Duration
	reconnectTimeout  time.Duration

	historyMemory   int
	historyReplicas int

	security securityConfig // security.go: tokens, permissions, limits, server API
	tls      tlsConfig      // tls.go: client and peer-link TLS

	// What the config was read from, so a reload (SIGHUP) reads it again
	// the same way, and the value of every flag after reading, so a reload
	// can name the settings that changed.
	args   []string
	getenv func(string) string
	file   *configFile // configfile.go; nil without --config
	values map[string]string
	level  *slog.LevelVar // set by logger: the log level a reload changes
}

const envPrefix = "MESHCAST_"

// parseConfig reads flags from args; a flag not given on the command line
// takes its MESHCAST_<NAME> environment variable (--max-message is
// MESHCAST_MAX_MESSAGE), then its value in the --config file, then its
// default.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := c.flagSet(io.Discard) // the full usage only for --help, not after every mistyped flag
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return c, err
		}
		return c, flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyEnv(fs, set, getenv); err != nil {
		return c, err
	}
	if err := c.applyFile(fs, set); err != nil {
		return c, err
	}
	c.args, c.getenv = args, getenv
	c.values = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.values[f.Name] = f.Value.String() })
	if err := c.validate(); err != nil {
		if c.file != nil {
			return c, errors.Join(c.file.locateAll(err)...)
		}
		return c, err
	}
	return c, nil
}

// flagError is a parse error of fs with what to do about it: a
// duration's unit, and where the flags are listed.
func flagError(fs *flag.FlagSet, err error) error {
	hint := "meshcast --help lists the flags"
	// The flag's name follows the quoted value, which may itself contain
	// "for flag -x": the last mention of a real flag is the one.
	var f *flag.Flag
	for _, m := range regexp.MustCompile(`for flag -([a-z0-9-]+)`).FindAllStringSubmatch(err.Error(), -1) {
		if found := fs.Lookup(m[1]); found != nil {
			f = found
		}
	}
	if f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, isDuration := g.Get().(time.Duration); isDuration {
				hint = "a duration takes a unit: 10s, 500ms, 2m, 1h"
			}
		}
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// applyEnv sets every flag not in set from its environment variable, and
// adds it to set.
func applyEnv(fs *flag.FlagSet, set map[string]bool, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			set[f.Name] = true
		}
	})
	return errors.Join(errs...)
}

// applyFile sets every flag not in set from the --config file.
func (c *config) applyFile(fs *flag.FlagSet, set map[string]bool) error {
	path := c.security.configFile
	if path == "" {
		return nil
	}
	cf, errs := loadConfigFile(path, fs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, v := range cf.values {
		if set[v.key] {
			continue // a flag or the environment wins
		}
		if err := fs.Set(v.key, v.value); err != nil {
			return &lineError{path: path, line: v.line, err: fmt.Errorf("%s: %w", v.key, err)}
		}
	}
	c.file = cf
	c.security.fileNamespaces = cf.namespaces
	return nil
}

// flagSet binds every flag to c.
func (c *config) flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("meshcast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", ":8080", "HTTP and WebSocket listen address")
	fs.IntVar(&c.maxMessage, "max-message", 64<<10, "largest client message in bytes; larger closes the connection with 1009")
	fs.IntVar(&c.maxData, "max-data", 32<<10, "largest publish data in bytes; larger is refused with err 413")
	fs.IntVar(&c.maxSubscriptions, "max-subscriptions", 1024, "channels one connection may subscribe to; more is refused with err 429")
	fs.IntVar(&c.writeQueue, "write-queue", 1<<20, "bytes queued per connection before it is closed as a slow consumer (1008)")
	fs.DurationVar(&c.pingInterval, "ping-interval", 25*time.Second, "server ping interval; clients silent for two intervals are closed")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", `comma-separated browser origins allowed to connect besides the node's own host, "*" for any (default: the own host and localhost)`)
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "longest graceful shutdown on SIGINT/SIGTERM")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address instead of on --listen (keeps it off the public port)")
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ (for diagnosis; do not expose publicly)")
	fs.IntVar(&c.gcPercent, "gc-percent", 50, "Go GC target percentage (GOGC); lower uses less memory per connection, higher less CPU in connection bursts")
	fs.BoolVar(&c.ioURing, "io-uring", true, "write to clients in batches through io_uring where the kernel allows it (Linux; otherwise, or with false, one write(2) per connection)")

	fs.StringVar(&c.name, "name", "", "node name, unique in the cluster (default: hostname:peer-port)")
	fs.StringVar(&c.gossip, "gossip", ":7946", "gossip (memberlist) bind address, TCP and UDP")
	fs.StringVar(&c.peer, "peer", ":7947", "peer-link bind address (TCP)")
	fs.StringVar(&c.advertise, "advertise", "", "address other nodes use to reach this one (default: detected)")
	fs.StringVar(&c.join, "join", "", "comma-separated seeds host:port (gossip ports) to join; a DNS name joins every address it resolves to")
	fs.StringVar(&c.secret, "secret", "", "cluster secret, at least 128 bits (openssl rand -base64 32): encrypts gossip and authenticates peer links (prefer --secret-file or MESHCAST_SECRET)")
	fs.StringVar(&c.secretFile, "secret-file", "", "file holding the cluster secret")
	fs.StringVar(&c.clusterName, "cluster-name", "meshcast", "cluster name; nodes of other clusters are refused")
	fs.DurationVar(&c.joinTimeout, "join-timeout", 10*time.Second, "with --join: how long to wait to join and link with every member before serving anyway")
	fs.DurationVar(&c.reconnectInterval, "reconnect-interval", 2*time.Second, "how often to retry members seen failing and seeds that are not members (heals partitions)")
	fs.IntVar(&c.historyMemory, "history-memory", 256, "MiB of history this node keeps for every channel with history together; past it the oldest messages go first")
	fs.IntVar(&c.historyReplicas, "history-replicas", 2, "nodes that hold a publish on a channel with history before it is acked (this one included), so that it survives the death of replicas-1 nodes")
	fs.DurationVar(&c.reconnectTimeout, "reconnect-timeout", 24*time.Hour, "how long a failed member is retried and counted as expected before it is forgotten")

	c.security.register(fs)
	c.tls.register(fs)
	return fs
}

func (c *config) validate() error {
	var errs problems
	check := errs.check
	check(c.maxMessage < 128, "--max-message must be at least 128 bytes")
	check(c.maxData <= 0 || c.maxData > c.maxMessage, "--max-data must be positive and at most --max-message")
	check(c.writeQueue < c.maxMessage, "--write-queue must be at least --max-message")
	check(c.gcPercent < 10, "--gc-percent must be at least 10")
	check(c.pingInterval < 100*time.Millisecond, "--ping-interval must be at least 100ms")
	if c.logFormat != "text" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format must be text or json, not %q", c.logFormat))
	}
	check(c.secret != "" && c.secretFile != "", "give --secret or --secret-file, not both")
	_, port, _ := net.SplitHostPort(c.gossip)
	check(c.gossip == c.peer && port != "0", // :0 is a free port each
		"--gossip and --peer must be different addresses (gossip uses TCP and UDP on its port, peer links TCP on theirs)")
	check(c.joinTimeout <= 0 || c.reconnectTimeout <= 0, "--join-timeout and --reconnect-timeout must be positive")
	errs = append(errs, checkSeeds(splitList(c.join)))
	check(c.reconnectInterval < 10*time.Millisecond, "--reconnect-interval must be at least 10ms")
	check(c.historyMemory < 1, "--history-memory must be at least 1 (MiB)")
	check(c.historyReplicas < 1, "--history-replicas must be at least 1")
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", c.logLevel))
	}
	errs = append(errs, c.security.validate(), c.tls.validate())
	// Every problem at once: a fix-one-restart-find-the-next loop is slow
	// at 3 a.m. errors.Join drops the nils.
	return errors.Join(errs...)
}

// checkSeeds refuses a --join seed that can never be joined: a port that
// is not a number from 1 to 65535, or an empty host. Such a typo was
// retried for ever, and past --join-timeout the node served on its own.
// A name that does not resolve (yet) is not refused: a Service's DNS
// name may come later. A seed without a port gets the default 7946.
func checkSeeds(seeds []string) error {
	var errs []error
	for _, s := range seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			if strings.Contains(s, ":") && net.ParseIP(s) == nil {
				errs = append(errs, fmt.Errorf("--join: %q is not host:port", s))
			}
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("--join: %q: the port must be a number from 1 to 65535 (the seed's --gossip port)", s))
		}
		if host == "" {
			errs = append(errs, fmt.Errorf("--join: %q has no host", s))
		}
	}
	return errors.Join(errs...)
}

// problems collects the configuration's problems, to report them all.
type problems []error

// check adds msg if bad.
func (p *problems) check(bad bool, msg string) {
	if bad {
		*p = append(*p, errors.New(msg))
	}
}

// logger builds the node's logger; its level is c.level, which a reload
// may change.
func (c *config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	c.level = new(slog.LevelVar)
	c.level.Set(lvl)
	opts := &slog.HandlerOptions{Level: c.level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// clusterSecret returns the secret from --secret, MESHCAST_SECRET or
// --secret-file.
func (c *config) clusterSecret() ([]byte, error) {
	if c.secretFile == "" {
		return []byte(c.secret), nil
	}
	s, err := readSecretFile("--secret-file", c.secretFile)
	return []byte(s), err
}

// strongSecret is clusterSecret, refused if it is weak (secret.go) unless
// --insecure is given.
func (c *config) strongSecret() ([]byte, error) {
	secret, err := c.clusterSecret()
	if err != nil {
		return nil, err
	}
	if err := checkSecret(secret); err != nil && !c.security.insecure {
		return nil, err
	}
	return secret, nil
}

// readSecretFile reads a secret from the file a flag names, without the
// surrounding white space (a trailing newline, mostly); an empty file is an
// error, never an empty secret.
func readSecretFile(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", flag, path)
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
