package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"

	"github.com/meshcast/meshcast/cluster"
)

// tlsConfig holds the TLS flags of the client listener and the peer links.
type tlsConfig struct {
	cert, key                 string // client listener
	peerCert, peerKey, peerCA string // peer links, mutual TLS
}

func (t *tlsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate (chain) for --listen: serves HTTPS and WSS instead of HTTP and WS; reloaded on SIGHUP")
	fs.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&t.peerCert, "peer-tls-cert", "", "PEM certificate of this node for mutual TLS on peer links (signed by --peer-tls-ca; reloaded on SIGHUP)")
	fs.StringVar(&t.peerKey, "peer-tls-key", "", "PEM private key of --peer-tls-cert")
	fs.StringVar(&t.peerCA, "peer-tls-ca", "", "PEM CA certificate(s) peer-link certificates must chain to")
}

func (t *tlsConfig) validate() error {
	var errs problems
	errs.check((t.cert == "") != (t.key == ""), "give both --tls-cert and --tls-key, or neither")
	n := 0
	for _, f := range []string{t.peerCert, t.peerKey, t.peerCA} {
		if f != "" {
			n++
		}
	}
	errs.check(n != 0 && n != 3, "peer TLS needs all of --peer-tls-cert, --peer-tls-key and --peer-tls-ca")
	return errors.Join(errs...)
}

// certReloader holds a certificate loaded from files and swaps in a new one
// on reload; handshakes in progress and open connections keep the old one.
type certReloader struct {
	flag              string // for messages: the flag naming the files
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(flag, certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{flag: flag, certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the files again; on error the current certificate stays.
func (r *certReloader) reload() error {
	c, err := r.load()
	if err != nil {
		return err
	}
	r.cert.Store(c)
	return nil
}

// load reads the files.
func (r *certReloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.flag, r.certFile, err)
	}
	return &c, nil
}

// logLoaded logs the certificate in use, with its subject and expiry.
func (r *certReloader) logLoaded(log *slog.Logger) {
	attrs := []any{slog.String("flag", r.flag)}
	if leaf := r.cert.Load().Leaf; leaf != nil {
		attrs = append(attrs, slog.String("subject", leaf.Subject.String()), slog.Time("not_after", leaf.NotAfter))
	}
	log.Info("certificate reloaded", attrs...)
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

func (r *certReloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// tlsSetup is the TLS state of a running node: nil fields are not configured.
type tlsSetup struct {
	client *certReloader // --tls-cert
	peer   *certReloader // --peer-tls-cert
	// peerConfig is cluster.Config.TLS.
	peerConfig *tls.Config
}

// setup loads every configured certificate; errors name the flag.
func (t *tlsConfig) setup() (*tlsSetup, error) {
	s := &tlsSetup{}
	var err error
	if t.cert != "" {
		if s.client, err = newCertReloader("--tls-cert", t.cert, t.key); err != nil {
			return nil, err
		}
	}
	if t.peerCert == "" {
		return s, nil
	}
	if s.peer, err = newCertReloader("--peer-tls-cert", t.peerCert, t.peerKey); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(t.peerCA)
	if err != nil {
		return nil, fmt.Errorf("--peer-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--peer-tls-ca %s: no PEM certificate found", t.peerCA)
	}
	// cluster.MutualTLS, with the certificate behind the reloader.
	s.peerConfig = cluster.MutualTLS(tls.Certificate{}, pool)
	s.peerConfig.Certificates = nil
	s.peerConfig.GetCertificate = s.peer.getCertificate
	s.peerConfig.GetClientCertificate = s.peer.getClientCertificate
	return s, nil
}

// listen wraps the client listener in TLS when --tls-cert is set.
func (s *tlsSetup) listen(ln net.Listener) net.Listener {
	if s.client == nil {
		return ln
	}
	return tls.NewListener(ln, &tls.Config{
		GetCertificate: s.client.getCertificate,
		MinVersion:     tls.VersionTLS12,
		// HTTP/1.1 only: a WebSocket upgrade is an HTTP/1.1 request.
		NextProtos: []string{"http/1.1"},
	})
}

// scheme is the URL scheme the client listener serves.
func (s *tlsSetup) scheme() string {
	if s.client == nil {
		return "http"
	}
	return "https"
}

// reload reloads every configured certificate. A file that fails keeps its
// old certificate; connections are never dropped either way.
func (s *tlsSetup) reload(log *slog.Logger) error {
	var errs []error
	for _, r := range []*certReloader{s.client, s.peer} {
		if r == nil {
			continue
		}
		if err := r.reload(); err != nil {
			log.Error("certificate reload failed; keeping the current one", slog.Any("err", err))
			errs = append(errs, err)
			continue
		}
		r.logLoaded(log)
	}
	return errors.Join(errs...)
}

// prepare reads every configured certificate without using it yet; the
// returned commit swaps them all in. A configuration reload calls it
// before changing anything, so a bad file changes nothing.
func (s *tlsSetup) prepare() (commit func(*slog.Logger), err error) {
	type pending struct {
		r *certReloader
		c *tls.Certificate
	}
	var ps []pending
	for _, r := range []*certReloader{s.client, s.peer} {
		if r == nil {
			continue
		}
		c, err := r.load()
		if err != nil {
			return nil, err
		}
		ps = append(ps, pending{r, c})
	}
	return func(log *slog.Logger) {
		for _, p := range ps {
			p.r.cert.Store(p.c)
			p.r.logLoaded(log)
		}
	}, nil
}
