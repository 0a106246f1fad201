package certgen

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestIssueNodeCertificate(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue("n1", "127.0.0.11", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// A node presents the same certificate as server and as Raft client.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
	for _, h := range []string{"127.0.0.11", "localhost"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Error(err)
		}
	}
	if err := cert.VerifyHostname("127.0.0.12"); err == nil {
		t.Error("certificate of 127.0.0.11 valid for 127.0.0.12")
	}
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other.Pool()}); err == nil {
		t.Error("verified against a foreign CA")
	}
}

func TestWriteFilesAndKeyPair(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := Files{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem"), CA: filepath.Join(dir, "ca.pem")}
	if err := ca.WriteFiles(f, "n1", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f.CA); err != nil || string(b) != string(ca.PEM) {
		t.Fatalf("CA file: %v", err)
	}
	if fi, err := os.Stat(f.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	if _, err := ca.KeyPair("client"); err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(Files{Cert: filepath.Join(dir, "missing", "c.pem")}, "n1"); err == nil {
		t.Error("WriteFiles into a missing directory succeeded")
	}
}
