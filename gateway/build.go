package gateway

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/gateway/balance"
	"github.com/nexus/nexus/gateway/breaker"
	"github.com/nexus/nexus/gateway/plugin/apikey"
	"github.com/nexus/nexus/gateway/plugin/cors"
	"github.com/nexus/nexus/gateway/plugin/jwtauth"
	"github.com/nexus/nexus/gateway/router"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// ConfigPrefix is the part of the configuration store the gateway reads
// (JWT keys under gateway/jwt/, API keys under gateway/api-keys/).
const ConfigPrefix = "gateway/"

// maxServiceWatches is how many services get their own watch channel; past
// it, any service change rebuilds the table.
const maxServiceWatches = 512

// builder compiles tables. It is used by one goroutine at a time (New, then
// the watcher) and keeps the state that outlives a table.
type builder struct {
	g        *Gateway
	pool     *upstreamPool
	breakers map[string]*breaker.Breaker
	limiters map[string]*tokenbucket.Limiter
	rmetrics map[string]*routeMetrics
	none     *routeMetrics
	jwt      map[string]jwtEntry // by config key
	keys     *apikey.Set
	keysSig  string
}

type jwtEntry struct {
	index uint64
	v     *jwtauth.Verifier
	err   error
}

func newBuilder(g *Gateway) *builder {
	return &builder{
		g:        g,
		pool:     newUpstreamPool(&g.opts, g.metrics),
		breakers: map[string]*breaker.Breaker{},
		limiters: map[string]*tokenbucket.Limiter{},
		rmetrics: map[string]*routeMetrics{},
		none:     g.metrics.forRoute("none"),
		jwt:      map[string]jwtEntry{},
	}
}

// rebuild compiles a table from the store, swaps it in and returns the
// watch set that fires on the next relevant change.
func (g *Gateway) rebuild() memdb.WatchSet {
	start := time.Now()
	ws := memdb.NewWatchSet()
	// The abandon channel is taken before the transaction so that a restore
	// in between is not missed.
	ws.Add(g.store.AbandonCh())
	tx := g.store.ReadTxn()
	defer tx.Abort()
	t := g.builder.build(tx, ws)
	g.table.Store(t)
	g.metrics.rebuilds.Inc()
	g.metrics.rebuildTime.Observe(time.Since(start).Seconds())
	g.metrics.routes.Set(float64(len(t.routes)))
	g.metrics.tableIndex.Set(float64(t.index))
	return ws
}

func (b *builder) build(tx *registry.Tx, ws memdb.WatchSet) *Table {
	routes := tx.Routes(ws)
	cfg := tx.ConfigList(ws, ConfigPrefix)
	index := max(tx.TableIndex(nil, "routes"), tx.TableIndex(nil, "config"))

	// Any instance change fires svcAll; each routed service gets its own
	// channel up to maxServiceWatches so that unrelated services do not
	// cause rebuilds.
	all := memdb.NewWatchSet()
	index = max(index, tx.TableIndex(all, "services"))
	var svcAll <-chan struct{}
	for ch := range all {
		svcAll = ch
	}

	cfgByKey := make(map[string]*registry.ConfigEntry, len(cfg))
	for i := range cfg {
		cfgByKey[cfg[i].Key] = &cfg[i]
	}
	b.loadAPIKeys(cfg)

	usedUp := map[string]bool{}
	usedBreakers := map[string]bool{}
	usedLimiters := map[string]bool{}
	clusterLimiters := map[string]*tokenbucket.Limiter{}
	instances := map[string][]registry.Instance{}
	t := &Table{routes: make(map[string]*route, len(routes)), index: index, none: b.none}
	entries := make([]router.Entry[*route], 0, len(routes))
	for i := range routes {
		spec := &routes[i]
		insts, seen := instances[spec.Service]
		if !seen {
			one := memdb.NewWatchSet()
			insts = tx.ServiceInstances(one, spec.Service)
			for ch := range one {
				ws.AddWithLimit(maxServiceWatches, ch, svcAll)
			}
			instances[spec.Service] = insts
		}
		r, err := b.compile(spec, insts, cfgByKey, usedUp, usedBreakers, usedLimiters)
		if err != nil {
			b.g.logger.Warn("gateway route skipped", "route", spec.ID, "err", err)
			continue
		}
		if r.limiter != nil && spec.RateLimit.Scope == "cluster" {
			clusterLimiters[r.id] = r.limiter
		}
		t.routes[r.id] = r
		entries = append(entries, router.Entry[*route]{
			ID: spec.ID, Hosts: spec.Hosts, Paths: spec.Paths, Exact: spec.Match == "exact",
			Methods: spec.Methods, Priority: spec.Priority, Value: r,
		})
	}
	t.router = router.Build(entries)

	b.pool.retain(usedUp)
	for k := range b.breakers {
		if !usedBreakers[k] {
			delete(b.breakers, k)
		}
	}
	for k := range b.limiters {
		if !usedLimiters[k] {
			delete(b.limiters, k)
		}
	}
	for id := range b.rmetrics {
		if t.routes[id] == nil {
			delete(b.rmetrics, id)
			b.g.metrics.forget(id)
		}
	}
	b.g.sharer.SetLimiters(clusterLimiters)
	return t
}

// compile turns one stored route and its service's instances into a route.
func (b *builder) compile(spec *registry.Route, insts []registry.Instance, cfg map[string]*registry.ConfigEntry,
	usedUp, usedBreakers, usedLimiters map[string]bool) (*route, error) {
	timeout, err := time.ParseDuration(spec.Timeout)
	if err != nil || timeout <= 0 {
		timeout, _ = time.ParseDuration(registry.DefaultRouteTimeout)
	}
	retries := registry.DefaultRetries
	if spec.Retries != nil {
		retries = *spec.Retries
	}
	kind, err := balance.ParseKind(spec.LoadBalancer)
	if err != nil {
		return nil, err
	}
	r := &route{
		id: spec.ID, service: spec.Service, stripPath: spec.StripPath, preserveHost: spec.PreserveHost,
		timeout: timeout, retries: retries, hashOn: parseKeySpec(spec.HashOn), spec: spec,
	}
	r.metrics = b.rmetrics[spec.ID]
	if r.metrics == nil {
		r.metrics = b.g.metrics.forRoute(spec.ID)
		b.rmetrics[spec.ID] = r.metrics
	}

	var openFor time.Duration
	if cb := spec.CircuitBreaker; cb != nil {
		openFor, err = time.ParseDuration(cb.OpenFor)
		if err != nil || openFor <= 0 {
			openFor = 30 * time.Second
		}
	}
	var bal []balance.Endpoint
	for _, in := range insts {
		if in.Status != registry.StatusPassing {
			continue
		}
		addr := net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
		usedUp[addr] = true
		ep := endpoint{id: in.ID, up: b.pool.get(addr)}
		if cb := spec.CircuitBreaker; cb != nil {
			ep.breaker = b.breaker(spec.ID, in.ID, addr, cb.ConsecutiveFailures, openFor, usedBreakers)
		}
		r.endpoints = append(r.endpoints, ep)
		bal = append(bal, balance.Endpoint{ID: in.ID, Weight: weight(in.Metadata)})
	}
	r.picker = balance.New(kind, bal)

	if rl := spec.RateLimit; rl != nil {
		key := fmt.Sprintf("%s\x00%g\x00%d\x00%s\x00%s", spec.ID, rl.RPS, rl.Burst, rl.Key, rl.Scope)
		l := b.limiters[key]
		if l == nil {
			l = tokenbucket.New(rl.RPS, rl.Burst, b.g.opts.RateLimitMaxKeys)
			b.limiters[key] = l
		}
		usedLimiters[key] = true
		r.limiter, r.limitKey = l, parseKeySpec(rl.Key)
	}
	if spec.CORS != nil {
		r.cors = cors.New(spec.CORS, spec.Methods)
	}
	if a := spec.Auth; a != nil {
		switch a.Type {
		case "jwt":
			v, problem := b.jwtVerifier(spec.ID, cfg)
			r.auth = newJWTAuth(v, problem, a.ForwardClaims)
		case "key":
			r.auth = &keyAuth{set: b.keys}
		default:
			return nil, fmt.Errorf("unknown auth type %q", a.Type)
		}
	}
	if c := spec.Cache; c != nil {
		ttl, err := time.ParseDuration(c.TTL)
		if err == nil && ttl > 0 {
			r.cache, r.cacheTTL = b.g.cache, ttl
		}
	}
	r.compress = spec.Compression != nil && spec.Compression.Enabled
	r.streamResponse = r.cache == nil && !r.compress
	return r, nil
}

func (b *builder) breaker(routeID, instID, addr string, threshold int, openFor time.Duration, used map[string]bool) *breaker.Breaker {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d", routeID, instID, addr, threshold, openFor)
	used[key] = true
	if br := b.breakers[key]; br != nil {
		return br
	}
	gauge := b.g.metrics.breakerState.WithLabelValues(routeID, instID)
	gauge.Set(0)
	br := breaker.New(threshold, openFor, func(s breaker.State) {
		gauge.Set(float64(s))
		b.g.logger.Info("circuit breaker", "route", routeID, "instance", instID, "upstream", addr, "state", s.String())
	})
	b.breakers[key] = br
	return br
}

// jwtVerifier returns the verifier of a route from gateway/jwt/<route-id>,
// else gateway/jwt/default; nil and the reason when there is none.
func (b *builder) jwtVerifier(routeID string, cfg map[string]*registry.ConfigEntry) (*jwtauth.Verifier, string) {
	e := cfg[jwtauth.ConfigPrefix+routeID]
	if e == nil {
		e = cfg[jwtauth.ConfigPrefix+"default"]
	}
	if e == nil {
		return nil, "no config key " + jwtauth.ConfigPrefix + routeID + " or " + jwtauth.ConfigPrefix + "default"
	}
	cached, ok := b.jwt[e.Key]
	if !ok || cached.index != e.ModifyIndex {
		v, err := jwtauth.Parse(e.Value)
		cached = jwtEntry{index: e.ModifyIndex, v: v, err: err}
		b.jwt[e.Key] = cached
		if err != nil {
			b.g.logger.Warn("invalid JWT configuration; requests to its routes are refused", "key", e.Key, "err", err)
		}
	}
	if cached.err != nil {
		return nil, e.Key + ": " + cached.err.Error()
	}
	return cached.v, ""
}

// loadAPIKeys rebuilds the API key set when its config entries changed.
func (b *builder) loadAPIKeys(cfg []registry.ConfigEntry) {
	var sig strings.Builder
	for i := range cfg {
		if strings.HasPrefix(cfg[i].Key, apikey.ConfigPrefix) {
			fmt.Fprintf(&sig, "%s@%d;", cfg[i].Key, cfg[i].ModifyIndex)
		}
	}
	if b.keys != nil && sig.String() == b.keysSig {
		return
	}
	kb := apikey.NewBuilder()
	for i := range cfg {
		if strings.HasPrefix(cfg[i].Key, apikey.ConfigPrefix) {
			kb.Add(cfg[i].Key, cfg[i].Value)
		}
	}
	set, err := kb.Build()
	if err != nil {
		b.g.logger.Warn("some API keys were refused", "err", err)
	}
	b.keys, b.keysSig = set, sig.String()
}

// weight reads an instance's "weight" metadata (default 1, 0 = no traffic).
func weight(md map[string]string) int {
	s, ok := md["weight"]
	if !ok {
		return 1
	}
	w, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || w < 0 {
		return 1
	}
	return min(w, balance.MaxWeight)
}
