package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// HeaderRequestID carries the request id to the upstream and back.
const HeaderRequestID = "X-Request-ID"

// canonicalRequestID is HeaderRequestID as fasthttp normalizes it.
const canonicalRequestID = "X-Request-Id"

// maxRequestIDLen bounds a propagated request id; a longer or malformed one
// is replaced by a generated id.
const maxRequestIDLen = 128

// idGen makes request ids: a random 64-bit prefix per gateway and a counter,
// as 32 hex digits. Unique without a syscall per request.
type idGen struct {
	prefix [8]byte
	n      atomic.Uint64
}

func newIDGen() *idGen {
	g := &idGen{}
	_, _ = rand.Read(g.prefix[:])
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	g.n.Store(binary.LittleEndian.Uint64(seed[:]))
	return g
}

// appendID appends a fresh id to dst.
func (g *idGen) appendID(dst []byte) []byte {
	const hex = "0123456789abcdef"
	var raw [16]byte
	copy(raw[:8], g.prefix[:])
	binary.BigEndian.PutUint64(raw[8:], g.n.Add(1))
	for _, c := range raw {
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}

// validRequestID accepts visible ASCII ids of sane length, so that a client
// cannot inject header or log content.
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestIDLen {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
