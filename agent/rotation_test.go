package agent_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

// servedCN is the common name of the certificate addr presents on a new
// TLS connection.
func servedCN(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// Certificate rotation (docs/operations.md): the files are replaced and the
// agent reloads them (Reload, what SIGHUP calls): new connections to the
// admin API and the gateway present the new certificates, without a
// restart, and the node keeps taking writes. A pair that fails to load is
// refused and the previous one stays in use.
func TestCertificateRotationOnReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cluster-ca")
	admin := ca.WriteFiles(t, dir, "admin", "admin-old", "127.0.0.1")
	gw := ca.WriteFiles(t, dir, "gateway", "gateway-old", "127.0.0.1")
	p := agenttest.NewPorts(t).Node()
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Ports: p, Expect: 1, Args: []string{
		"--tls-cert-file", admin.Cert, "--tls-key-file", admin.Key, "--tls-ca-file", admin.CA,
		"--gateway-tls-cert-file", gw.Cert, "--gateway-tls-key-file", gw.Key,
	}})
	waitReady(t, a, "TLS node")
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(admin.CA)
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("CA: %v", err)
	}
	adminAddr, gwAddr := a.AdminAddr().String(), a.GatewayAddr().String()
	if servedCN(t, adminAddr, roots) != "admin-old" || servedCN(t, gwAddr, roots) != "gateway-old" {
		t.Fatal("the initial certificates are not served")
	}

	ca.WriteFiles(t, dir, "admin", "admin-new", "127.0.0.1")
	ca.WriteFiles(t, dir, "gateway", "gateway-new", "127.0.0.1")
	a.Reload()
	retry.Run(t, func(r *retry.R) {
		if got := servedCN(t, adminAddr, roots); got != "admin-new" {
			r.Fatalf("admin API serves %s", got)
		}
		if got := servedCN(t, gwAddr, roots); got != "gateway-new" {
			r.Fatalf("gateway serves %s", got)
		}
	}, retry.Timeout(10*time.Second), retry.What("the rotated certificates"))
	setKey(t, a, "after-rotation", "1")

	// A broken pair is refused; the rotated one stays.
	if err := os.WriteFile(admin.Cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Reload()
	if got := servedCN(t, adminAddr, roots); got != "admin-new" {
		t.Fatalf("after a failed reload the admin API serves %s", got)
	}
}
