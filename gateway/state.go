package gateway

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// reqState is what one request's handling learns, for the response
// headers, metrics and the access log. It lives on the handler's stack.
type reqState struct {
	start       time.Time
	route       *route
	ep          *endpoint
	attempts    int
	upstreamDur time.Duration
	code        string // error code when the gateway answered itself
	claims      jwt.MapClaims
	consumer    string
	cache       cacheResult
	limited     bool
	rl          tokenbucket.Decision
	hasRL       bool
	clientClose bool
	host, path  string // copies for the access log, taken before rewriting
}

type cacheResult uint8

const (
	cacheNone cacheResult = iota
	cacheHit
	cacheMiss
)

func (c cacheResult) String() string {
	switch c {
	case cacheHit:
		return "hit"
	case cacheMiss:
		return "miss"
	}
	return ""
}
