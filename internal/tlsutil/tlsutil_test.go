package tlsutil

import (
	"crypto/tls"
	"os"
	"testing"

	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

func TestReloaderSwapsCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, dir, "srv", "one", "127.0.0.1")
	r, err := NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ServerConfig(r, "")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cliCfg, err := ClientConfig(f.CA, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peer(); cn != "one" {
		t.Fatalf("CN %q, want one", cn)
	}
	// A broken file keeps the old pair.
	if err := os.WriteFile(f.Cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if cn := peer(); cn != "one" {
		t.Fatalf("CN %q after a failed reload, want one", cn)
	}
	ca.WriteFiles(t, dir, "srv", "two", "127.0.0.1")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := peer(); cn != "two" {
		t.Fatalf("CN %q after reload, want two", cn)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.pem"
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		fn   func() error
	}{
		{"missing cert", func() error { _, err := NewReloader(dir+"/none.pem", dir+"/none-key.pem"); return err }},
		{"client CA not PEM", func() error { _, err := ServerConfig(&Reloader{}, bad); return err }},
		{"CA missing", func() error { _, err := ClientConfig(dir+"/none.pem", nil); return err }},
	}
	for _, c := range cases {
		if c.fn() == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
