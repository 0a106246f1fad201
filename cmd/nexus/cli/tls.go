package cli

import (
	"crypto/tls"
	"flag"
	"net/http"
	"time"

	"github.com/nexus/nexus/internal/tlsutil"
)

// tlsFlags are the global TLS flags of the API client: the CA that signed
// the API's certificate and, for an API that requires one, a client
// certificate.
type tlsFlags struct {
	caFile, certFile, keyFile string
}

func (t *tlsFlags) register(define func(string, func()), fs *flag.FlagSet, getenv func(string) string) {
	define("ca-file", func() {
		fs.StringVar(&t.caFile, "ca-file", getenv("NEXUS_CACERT"), "PEM CA bundle of the API's certificate (`FILE`)")
	})
	define("client-cert", func() {
		fs.StringVar(&t.certFile, "client-cert", getenv("NEXUS_CLIENT_CERT"), "PEM client certificate (`FILE`)")
	})
	define("client-key", func() {
		fs.StringVar(&t.keyFile, "client-key", getenv("NEXUS_CLIENT_KEY"), "PEM key of --client-cert (`FILE`)")
	})
}

// httpClient is the HTTP client the flags describe.
func (t *tlsFlags) httpClient(timeout time.Duration) (*http.Client, error) {
	hc := &http.Client{Timeout: timeout}
	if t.caFile == "" && t.certFile == "" && t.keyFile == "" {
		return hc, nil
	}
	if (t.certFile == "") != (t.keyFile == "") {
		return nil, usagef("--client-cert and --client-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.caFile != "" {
		pool, err := tlsutil.LoadPool(t.caFile)
		if err != nil {
			return nil, usagef("--ca-file: %v", err)
		}
		cfg.RootCAs = pool
	}
	if t.certFile != "" {
		pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return nil, usagef("--client-cert/--client-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	hc.Transport = &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}
	return hc, nil
}
