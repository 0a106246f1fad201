package gateway

import (
	"time"

	"github.com/nexus/nexus/gateway/balance"
	"github.com/nexus/nexus/gateway/breaker"
	"github.com/nexus/nexus/gateway/plugin/cache"
	"github.com/nexus/nexus/gateway/plugin/cors"
	"github.com/nexus/nexus/gateway/router"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// Table is an immutable routing table: compiled routes with their endpoints
// (passing instances) and plugins. A new one replaces it on every change.
type Table struct {
	router *router.Table[*route]
	routes map[string]*route // by id
	index  uint64            // highest Raft index of routes, services and gateway config it reflects
	none   *routeMetrics     // metrics of requests no route matched
}

// route is one compiled route.
type route struct {
	id           string
	service      string
	stripPath    bool
	preserveHost bool
	timeout      time.Duration
	retries      int

	picker    *balance.Picker
	hashOn    keySpec
	endpoints []endpoint

	limiter  *tokenbucket.Limiter
	limitKey keySpec

	cors     *cors.Policy
	auth     authenticator
	cache    *cache.Cache
	cacheTTL time.Duration
	compress bool

	// streamResponse is false when a plugin needs the whole upstream body.
	streamResponse bool

	metrics *routeMetrics
	spec    *registry.Route
}

// endpoint is a passing instance of the route's service.
type endpoint struct {
	id      string // instance id
	up      *upstream
	breaker *breaker.Breaker // nil without a circuit_breaker on the route
}
