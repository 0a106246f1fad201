package main

import (
	"crypto/rand"
	"encoding/base64"
	"path/filepath"

	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

// writeTLSFiles issues a certificate for cn and hosts and writes it to dir
// as NAME.pem and NAME-key.pem, and the CA as ca.pem: every node of a run
// trusts the same CA, so one file serves them all.
func writeTLSFiles(ca *certgen.CA, dir, name, cn string, hosts ...string) (certgen.Files, error) {
	f := certgen.Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	if err := ca.WriteFiles(f, cn, hosts...); err != nil {
		return certgen.Files{}, err
	}
	return f, nil
}

// newGossipKey returns a random 32-byte key in base64 (AES-256-GCM), what
// `head -c 32 /dev/urandom | base64` gives.
func newGossipKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
