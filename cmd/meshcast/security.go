package main

import (
	"crypto"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshcast/meshcast/hub"
)

// securityConfig holds the flags of connection auth, channel permissions,
// limits and the server API.
type securityConfig struct {
	hmacSecret   string
	rsaPublicKey string
	jwksFile     string
	maxLifetime  time.Duration // --token-max-lifetime
	insecure     bool

	namespaces     namespaceFlag
	configFile     string
	fileNamespaces map[string]hub.Namespace // the config file's namespaces key

	publishRate         float64
	publishBurst        int
	maxConnections      int
	maxConnectionsPerIP int

	apiKey     string
	apiKeyFile string
	key        string // the API key from either, set by newHub
}

func (s *securityConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&s.hmacSecret, "token-hmac-secret", "", "HS256 secret of client connection tokens (JWT); prefer MESHCAST_TOKEN_HMAC_SECRET")
	fs.StringVar(&s.rsaPublicKey, "token-rsa-public-key", "", "PEM file of the RSA (RS256) or P-256 EC (ES256) public key of client tokens")
	fs.StringVar(&s.jwksFile, "token-jwks-file", "", "JWKS file of the RS256/ES256 keys of client tokens, chosen by the token's kid")
	fs.DurationVar(&s.maxLifetime, "token-max-lifetime", 24*time.Hour, "refuse client tokens whose exp is further ahead than this (0: no limit); tokens cannot be revoked, so this is how long a leaked one works")
	fs.BoolVar(&s.insecure, "insecure", false, "accept anonymous clients without the warning, and a cluster secret under 128 bits (demos only)")
	fs.Var(&s.namespaces, "namespace", "channel permissions of a namespace, NAME:subscribe=anyone|authenticated|claim,publish=nobody|subscribers|claim|anyone[,origins=URL|URL][,history=N][,history_ttl=DURATION][,presence=on][,join_leave=on]; repeat it, or separate with ';' (NAME empty: the default namespace)")
	fs.StringVar(&s.configFile, "config", "", "YAML config file: every flag by name (max-message: 65536), and namespaces; flags and MESHCAST_* win. A JSON file of namespaces still works")
	fs.Float64Var(&s.publishRate, "client-publish-rate", 0, "publishes per second one connection may sustain, over it err 429 (0: unlimited)")
	fs.IntVar(&s.publishBurst, "client-publish-burst", 0, "publish burst per connection (default: the rate)")
	fs.IntVar(&s.maxConnections, "max-connections", 0, "connections this node accepts, more get HTTP 503 (0: unlimited)")
	fs.IntVar(&s.maxConnectionsPerIP, "max-connections-per-ip", 0, "connections from one remote IP, more get HTTP 503 (0: unlimited)")
	fs.StringVar(&s.apiKey, "api-key", "", "bearer key of the server API (/api/publish, /api/broadcast, /api/disconnect, /api/presence, /api/presence_stats); without one the API answers 404")
	fs.StringVar(&s.apiKeyFile, "api-key-file", "", "file holding the server API key")
}

func (s *securityConfig) validate() error {
	var errs problems
	check := errs.check
	check(s.apiKey != "" && s.apiKeyFile != "", "give --api-key or --api-key-file, not both")
	check(s.publishRate < 0, "--client-publish-rate must not be negative")
	check(s.publishBurst < 0, "--client-publish-burst must not be negative")
	check(s.publishBurst > 0 && s.publishRate == 0, "--client-publish-burst needs --client-publish-rate")
	check(s.maxConnections < 0 || s.maxConnectionsPerIP < 0, "--max-connections and --max-connections-per-ip must not be negative")
	check(s.maxLifetime < 0, "--token-max-lifetime must not be negative")
	return errors.Join(errs...)
}

// apply sets the security flags on hcfg, reading the key and config files.
func (s *securityConfig) apply(hcfg *hub.Config, log *slog.Logger) error {
	sec, err := s.hubSecurity()
	if err != nil {
		return err
	}
	if s.key, err = s.readAPIKey(); err != nil {
		return err
	}
	v, err := s.tokenVerifier()
	if err != nil {
		return err
	}
	s.warnWeakTokenSecret(log)
	if v != nil {
		hcfg.Authenticator = v
	} else if !s.insecure {
		log.Warn("no client token auth configured: anyone who reaches this node may connect anonymously " +
			"(set --token-hmac-secret, --token-rsa-public-key or --token-jwks-file; --insecure silences this warning)")
	}
	hcfg.Security = sec
	return nil
}

func (s *securityConfig) hubSecurity() (hub.SecurityConfig, error) {
	sec := hub.SecurityConfig{
		PublishRate:         s.publishRate,
		PublishBurst:        s.publishBurst,
		MaxConnections:      s.maxConnections,
		MaxConnectionsPerIP: s.maxConnectionsPerIP,
	}
	var err error
	sec.Namespaces, err = s.namespaceRules()
	return sec, err
}

// tokenVerifier builds the verifier of every configured key, with the
// --token-max-lifetime check, or nil.
func (s *securityConfig) tokenVerifier() (*hub.TokenVerifier, error) {
	keys := hub.TokenKeys{HMACSecret: []byte(s.hmacSecret), PublicKeys: map[string]crypto.PublicKey{}}
	if s.jwksFile != "" {
		b, err := os.ReadFile(s.jwksFile)
		if err != nil {
			return nil, fmt.Errorf("--token-jwks-file: %w", err)
		}
		if keys.PublicKeys, err = hub.ParseJWKS(b); err != nil {
			return nil, fmt.Errorf("--token-jwks-file %s: %w", s.jwksFile, err)
		}
	}
	if s.rsaPublicKey != "" {
		b, err := os.ReadFile(s.rsaPublicKey)
		if err != nil {
			return nil, fmt.Errorf("--token-rsa-public-key: %w", err)
		}
		k, err := hub.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("--token-rsa-public-key %s: %w", s.rsaPublicKey, err)
		}
		if _, dup := keys.PublicKeys[""]; dup {
			return nil, errors.New("--token-jwks-file has a key without kid, and so does --token-rsa-public-key")
		}
		keys.PublicKeys[""] = k // tokens without a kid
	}
	if len(keys.HMACSecret) == 0 && len(keys.PublicKeys) == 0 {
		return nil, nil
	}
	v, err := hub.NewTokenVerifier(keys)
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	return v.WithMaxLifetime(s.maxLifetime), nil
}

// namespaceRules merges the config file's namespaces and --namespace (a
// flag replaces the file's entry of the same name); nil when neither is
// set.
func (s *securityConfig) namespaceRules() (map[string]hub.Namespace, error) {
	if s.fileNamespaces == nil && len(s.namespaces) == 0 {
		return demoNamespaces(), nil
	}
	rules := map[string]hub.Namespace{}
	for name, ns := range s.fileNamespaces {
		rules[name] = ns
	}
	for _, nf := range s.namespaces {
		rules[nf.name] = nf.ns
	}
	return rules, nil
}

// demoNamespaces are the rules of a node started with none configured:
// everything open, and history on the demo chat's namespace ("chat"), so
// that a reload of the page shows the last messages and a reconnect
// recovers what it missed. Configuring any namespace replaces them.
func demoNamespaces() map[string]hub.Namespace {
	return map[string]hub.Namespace{"chat": {History: 100, HistoryTTL: hub.Duration(time.Hour)}}
}

// warnWeakTokenSecret warns of an HMAC token secret that could be
// guessed: anyone holding one token can test guesses offline and then
// sign tokens for any user. It is a warning, not a refusal as for the
// cluster secret, because the key is often one a backend already has.
func (s *securityConfig) warnWeakTokenSecret(log *slog.Logger) {
	if s.hmacSecret == "" || s.insecure {
		return
	}
	if bits := secretBits([]byte(s.hmacSecret)); bits < minSecretBits {
		log.Warn(fmt.Sprintf("the token HMAC secret is weak (about %d bits, want %d): anyone holding one client token "+
			"can recover it offline and sign tokens for any user; generate one with `openssl rand -base64 32` "+
			"(--insecure silences this warning)", int(bits), minSecretBits))
	}
}

func (s *securityConfig) readAPIKey() (string, error) {
	if s.apiKeyFile == "" {
		return s.apiKey, nil
	}
	return readSecretFile("--api-key-file", s.apiKeyFile)
}

// routesWithAPI mounts the server API in front of the node's other routes.
func routesWithAPI(next, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, op := range []string{"publish", "broadcast", "disconnect", "history", "presence", "presence_stats"} {
		mux.Handle("/api/"+op, api)
	}
	mux.Handle("/", next)
	return mux
}

// namespaceFlag collects --namespace values.
type namespaceFlag []namedNamespace

type namedNamespace struct {
	name string
	ns   hub.Namespace
}

func (f *namespaceFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for _, n := range *f {
		parts = append(parts, fmt.Sprintf("%s:subscribe=%s,publish=%s", n.name, n.ns.Subscribe, n.ns.Publish))
	}
	return strings.Join(parts, ";")
}

// Set parses NAME:key=value,... ; several may be separated by ';' (one
// environment variable can then hold them all).
func (f *namespaceFlag) Set(v string) error {
	for spec := range strings.SplitSeq(v, ";") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		n, err := parseNamespace(spec)
		if err != nil {
			return err
		}
		*f = append(*f, n)
	}
	return nil
}

func parseNamespace(spec string) (namedNamespace, error) {
	name, rules, ok := strings.Cut(spec, ":")
	if !ok {
		return namedNamespace{}, fmt.Errorf("namespace %q: want NAME:subscribe=...,publish=...", spec)
	}
	n := namedNamespace{name: name}
	for kv := range strings.SplitSeq(rules, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "subscribe":
			err = n.ns.Subscribe.UnmarshalText([]byte(v))
		case "publish":
			err = n.ns.Publish.UnmarshalText([]byte(v))
		case "origins":
			n.ns.Origins = strings.Split(v, "|")
		case "history":
			n.ns.History, err = strconv.Atoi(v)
		case "history_ttl":
			err = n.ns.HistoryTTL.UnmarshalText([]byte(v))
		default:
			err = presenceOption(&n.ns, k, v) // presence.go
		}
		if err != nil {
			return n, fmt.Errorf("namespace %q: %w", name, err)
		}
	}
	return n, checkNamespace(name, n.ns)
}

// checkNamespace refuses what the hub would refuse at start (history out
// of range, join_leave without presence...), so that the error names the
// flag or the line of the config file.
func checkNamespace(name string, ns hub.Namespace) error {
	if err := ns.Check(); err != nil {
		return fmt.Errorf("namespace %q: %w", name, err)
	}
	return nil
}
