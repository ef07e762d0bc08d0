package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority for peer-link TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageCertSign,
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a node certificate usable as TLS server and client. It has no
// IP or DNS name: the dialer checks the chain only.
func (ca *testCA) issue(t testing.TB, node string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func tlsTestConfig(t testing.TB, name string, ca *testCA) Config {
	cfg := testConfig(name)
	cfg.TLS = MutualTLS(ca.issue(t, name), ca.pool)
	return cfg
}

// startTLSCluster starts n nodes with peer TLS from ca, linked both ways.
func startTLSCluster(t *testing.T, ca *testCA, n int) []*node {
	t.Helper()
	nodes := []*node{startNode(t, tlsTestConfig(t, "n0", ca))}
	for i := 1; i < n; i++ {
		cfg := tlsTestConfig(t, fmt.Sprintf("n%d", i), ca)
		cfg.Join = []string{nodes[0].gossipAddr()}
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFor(t, 20*time.Second, "TLS cluster to form", func() bool {
		for _, nd := range nodes {
			if !fullyLinked(nd, n) {
				return false
			}
		}
		return true
	})
	return nodes
}

func TestPeerTLSPublish(t *testing.T) {
	ca := newTestCA(t, "meshcast test CA")
	nodes := startTLSCluster(t, ca, 2)
	a, b := nodes[0], nodes[1]
	subscribe(t, a, "room")
	subscribe(t, b, "room")
	for i := range 50 {
		a.publish("room", fmt.Appendf(nil, "a%d", i), "", nil, nil)
		b.publish("room", fmt.Appendf(nil, "b%d", i), "", nil, nil)
	}
	waitFor(t, 5*time.Second, "publishes both ways", func() bool {
		return len(a.rec.on("room")) == 50 && len(b.rec.on("room")) == 50
	})
	for i, got := range b.rec.on("room") {
		if want := fmt.Sprintf("a%d", i); got != want {
			t.Fatalf("b got %q at %d, want %q", got, i, want)
		}
	}
	for _, nd := range nodes {
		if s := nd.Stats(); s.HandshakeFailures != 0 {
			t.Fatalf("%s: %d handshake failures", nd.Name(), s.HandshakeFailures)
		}
	}
}

func TestPeerTLSOtherCARefused(t *testing.T) {
	ca := newTestCA(t, "meshcast test CA")
	nodes := startTLSCluster(t, ca, 2)
	a := nodes[0]

	// The intruder knows the secret and joins gossip, but its certificate
	// comes from another CA (which is also the only one it trusts).
	other := newTestCA(t, "other CA")
	cfg := tlsTestConfig(t, "intruder", other)
	cfg.Join = []string{a.gossipAddr()}
	intruder := startNode(t, cfg)
	waitFor(t, 10*time.Second, "intruder seen alive", func() bool { return stateOf(a.Cluster, "intruder") == "alive" })
	waitFor(t, 10*time.Second, "TLS failures counted both ways", func() bool {
		return a.Stats().HandshakeFailures > 0 && intruder.Stats().HandshakeFailures > 0
	})
	for _, nd := range nodes {
		if l, _ := linkTo(nd.Cluster, "intruder"); l.State == "up" || l.InboundUp {
			t.Fatalf("%s has a link with the intruder: %+v", nd.Name(), l)
		}
	}
	// Publishes never reach it; the real cluster still works. (Waiting for
	// confirmation would time out: it waits for every live member, the
	// intruder too.)
	nodes[1].subscribe("room")
	waitFor(t, 5*time.Second, "n0 learns n1's interest", func() bool {
		l, _ := linkTo(a.Cluster, "n1")
		return l.InterestedChannels == 1
	})
	a.publish("room", []byte("x"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery inside the cluster", func() bool { return len(nodes[1].rec.on("room")) == 1 })
	if l, _ := linkTo(a.Cluster, "n1"); l.State != "up" || !l.InboundUp {
		t.Fatalf("real link disturbed: %+v", l)
	}
	if intruder.rec.total() != 0 {
		t.Fatal("intruder received a publish")
	}
}

func TestPeerTLSRefusesPlainTCP(t *testing.T) {
	ca := newTestCA(t, "meshcast test CA")
	nodes := startTLSCluster(t, ca, 2)
	a, b := nodes[0], nodes[1]
	// n1's own identity and secret, without TLS: the TLS listener refuses.
	conn, fr := dialPeer(t, a)
	err := b.hs.client(conn, fr, "n0")
	if err == nil {
		t.Fatal("plain-TCP handshake with a TLS peer port succeeded")
	}
	expectClosedOrReset(t, conn)
	waitFor(t, 5*time.Second, "failure counted", func() bool { return a.Stats().HandshakeFailures == 1 })
}

// expectClosedOrReset reads until the server ends the connection; a TLS
// listener may answer with an alert record first.
func expectClosedOrReset(t *testing.T, conn interface{ Read([]byte) (int, error) }) {
	t.Helper()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server kept the connection open")
			}
			return
		}
	}
}

func TestPeerTLSConfigValidation(t *testing.T) {
	cfg := testConfig("n0")
	cfg.TLS = &tls.Config{}
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a TLS config without certificate: %v, want ErrInvalidConfig", err)
	}
}

func TestDialerTLSChainOnly(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	d := dialerTLS(MutualTLS(ca.issue(t, "x"), ca.pool))
	good := ca.issue(t, "peer")
	leaf, _ := x509.ParseCertificate(good.Certificate[0])
	if err := d.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err != nil {
		t.Fatalf("cert from the CA refused: %v", err)
	}
	bad := other.issue(t, "peer")
	leaf, _ = x509.ParseCertificate(bad.Certificate[0])
	if err := d.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err == nil {
		t.Fatal("cert from another CA accepted")
	}
	if err := d.VerifyConnection(tls.ConnectionState{}); !errors.Is(err, errNoPeerCert) {
		t.Fatalf("no cert: %v", err)
	}
	// A ServerName keeps crypto/tls's full check.
	named := MutualTLS(good, ca.pool)
	named.ServerName = "peer.meshcast"
	if dn := dialerTLS(named); dn.InsecureSkipVerify || dn.VerifyConnection != nil {
		t.Fatal("ServerName set: the built-in verification must stay")
	}
}
