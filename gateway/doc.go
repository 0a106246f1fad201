// Package gateway is the API gateway every Nexus node serves on
// --gateway-addr: a fasthttp reverse proxy that routes requests to the passing
// instances of registered services from the node's own replica, so it keeps
// serving while the Raft leader is gone.
//
// The hot path reads a Table swapped with atomic.Pointer: a router over one
// slot per route, the slot holding the compiled route. The watcher follows
// the store's commits (registry.Listener, no polling) and updates only what
// changed: new endpoints go into a route's slot, and the router is rebuilt
// only when routes come, go or change their matching (build.go). Per request: match →
// CORS preflight → auth → rate limit → cache → pick an endpoint (balancer,
// circuit breaker, outlier ejection) → proxy over a pooled keep-alive
// connection with retries (transport.go: the round trip is the gateway's,
// over fasthttp.HostClient's pool; answers that fit a buffer are read whole,
// others stream) → response plugins (cache store,
// compression, CORS headers) → metrics and access log. On Linux, client
// and upstream sockets are read and written with raw system calls through
// the runtime's poller (rawconn_linux.go).
//
// State that must outlive a table update (connection pools, breakers,
// outlier detectors, rate-limit buckets, cached responses) lives in pools
// keyed by identity and is reused; a periodic sweep drops what no route
// uses.
package gateway
