// Package gateway is the API gateway every Nexus node serves on
// --gateway-addr: a fasthttp reverse proxy that routes requests to the passing
// instances of registered services from the node's own replica, so it keeps
// serving while the Raft leader is gone.
//
// The hot path reads only an immutable Table, swapped with atomic.Pointer by
// the watcher whenever routes, instances or gateway configuration change in
// the store (go-memdb watch channels, no polling). Per request: match →
// CORS preflight → auth → rate limit → cache → pick an endpoint (balancer,
// circuit breaker, outlier ejection) → proxy over a pooled keep-alive
// connection with retries (transport.go: the round trip is the gateway's,
// over fasthttp.HostClient's pool; answers that fit a buffer are read whole,
// others stream) → response plugins (cache store,
// compression, CORS headers) → metrics and access log. On Linux, client
// and upstream sockets are read and written with raw system calls through
// the runtime's poller (rawconn_linux.go).
//
// State that must outlive a table rebuild (connection pools, breakers,
// outlier detectors, rate-limit buckets, cached responses) lives in pools
// keyed by identity and is reused by each new table.
package gateway
