package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
)

// Peer links over TLS (Config.TLS). TLS protects the links on networks the
// operator does not trust; the secret handshake still runs inside it, so a
// certificate alone does not make a node a member, and the node name a peer
// claims is bound to the cluster secret as on plain links.
//
// Peers are dialled at the address in their memberlist metadata, usually an
// IP, so the dialer cannot check a host name the usual way. Unless
// Config.TLS.ServerName is set, it checks only that the peer's chain leads
// to Config.TLS.RootCAs: every node holding a certificate from the cluster's
// CA is a valid TLS peer. Set ServerName when every node's certificate
// carries one shared DNS name and that name should be checked too.

// MutualTLS returns a peer-link TLS config in which every node presents cert
// and accepts only peers whose certificate chains to ca, in both directions
// (the acceptor requires and verifies the dialer's certificate). cert must
// be usable for both server and client authentication (extended key usage
// serverAuth and clientAuth, or none).
func MutualTLS(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca,
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13, // every peer is meshcast: no need for older versions
	}
}

// validateTLS rejects a config with which every inbound link would fail.
func validateTLS(cfg *tls.Config) error {
	if cfg == nil {
		return nil
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return fmt.Errorf("%w: TLS has no certificate for the peer listener", ErrInvalidConfig)
	}
	return nil
}

// tlsConn closes the TCP connection under it directly. A peer link has no
// graceful end to announce, and tls.Conn.Close would first write a
// close_notify alert, which blocks for up to 5 s on a peer that stopped
// reading (and our closes run on link teardown paths that must be quick).
type tlsConn struct{ *tls.Conn }

func (c tlsConn) Close() error { return c.NetConn().Close() }

// tlsServer runs the acceptor's TLS handshake on conn, within conn's
// deadline. Without Config.TLS it returns conn unchanged.
func (c *Cluster) tlsServer(conn net.Conn) (net.Conn, error) {
	if c.cfg.TLS == nil {
		return conn, nil
	}
	tc := tls.Server(conn, c.cfg.TLS)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		if err == io.EOF {
			return conn, io.EOF // closed before its first byte: a probe
		}
		return conn, fmt.Errorf("%w: tls: %w", errHandshake, err)
	}
	return tlsConn{tc}, nil
}

// tlsClient runs the dialer's TLS handshake on conn, within conn's deadline,
// counting a failure like any other handshake failure. Without Config.TLS it
// returns conn unchanged.
func (c *Cluster) tlsClient(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if c.cfg.TLS == nil {
		return conn, nil
	}
	tc := tls.Client(conn, dialerTLS(c.cfg.TLS))
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() == nil {
			c.handshakeFailures.Add(1)
		}
		return conn, fmt.Errorf("%w: tls: %w", errHandshake, err)
	}
	return tlsConn{tc}, nil
}

// dialerTLS is cfg for one dial: without a ServerName the built-in check
// (chain and host name) is replaced by a chain-only check against RootCAs.
func dialerTLS(cfg *tls.Config) *tls.Config {
	if cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	d := cfg.Clone()
	d.InsecureSkipVerify = true // skips only the built-in check: verifyChain below replaces it
	own := cfg.VerifyConnection
	d.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verifyChain(cs, cfg.RootCAs); err != nil {
			return err
		}
		if own != nil {
			return own(cs)
		}
		return nil
	}
	return d
}

var errNoPeerCert = errors.New("peer presented no certificate")

// verifyChain checks the server's chain against roots (nil: the system's),
// as crypto/tls would but without a host name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errNoPeerCert
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	return nil
}
