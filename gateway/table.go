package gateway

import (
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/gateway/balance"
	"github.com/nexus/nexus/gateway/breaker"
	"github.com/nexus/nexus/gateway/plugin/cache"
	"github.com/nexus/nexus/gateway/plugin/cors"
	"github.com/nexus/nexus/gateway/router"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// Table is a routing table: a router over slots that hold the compiled
// routes with their endpoints (passing instances) and plugins. A new table
// replaces it when routes change; a route's slot gets a new compiled route
// when its service's instances change, so that such a change costs the
// route, not the table (builder).
type Table struct {
	router *router.Table[*routeSlot]
	routes map[string]*routeSlot // by id; never modified once published
	index  uint64                // highest Raft index of routes, services and gateway config it reflects
	none   *routeMetrics         // metrics of requests no route matched
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

	// What the route holds in the builder's shared pools, for the sweep.
	breakerKeys []string
	limiterKey  string
}

// routeSlot holds the current compiled version of one route; the router
// points to slots, requests load the route once.
type routeSlot struct{ atomic.Pointer[route] }

// endpoint is a passing instance of the route's service.
type endpoint struct {
	id      string // instance id
	up      *upstream
	breaker *breaker.Breaker // nil without a circuit_breaker on the route
}
