package gateway

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

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

// builder compiles tables. It is used by one goroutine at a time (New, then
// the watcher) and keeps the state that outlives a table.
//
// A full build reads every route, its service's instances and the gateway
// config; it runs at start, after a restore and when the gateway config
// changes. Anything else is applied incrementally from the store's changes
// (registry.Listener): a route that changed is compiled again, and so are
// the routes of a service whose instances changed; the router is rebuilt
// only when a route's matching (hosts, paths, match, methods, priority)
// changed or a route came or went. Each compiled route sits in a slot that
// the router points to, so new endpoints are one atomic store.
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

	// What the current table was built from.
	specs     map[string]*registry.Route          // stored routes by id (skipped ones too)
	slots     map[string]*routeSlot               // compiled routes in the router, by id
	entries   map[string]router.Entry[*routeSlot] // the router's entries, by id
	byService map[string]map[string]bool          // route ids by service
	cfg       map[string]*registry.ConfigEntry    // gateway config by key
	cluster   map[string]*tokenbucket.Limiter     // cluster-scope limiters by route id
	router    *router.Table[*routeSlot]
	// swept is when unused upstreams, breakers and limiters were last
	// dropped; released says something may have become unused since.
	swept    time.Time
	released bool
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

// rebuild compiles a whole table from the store and swaps it in.
func (g *Gateway) rebuild() {
	start := time.Now()
	tx := g.store.ReadTxn()
	defer tx.Abort()
	t := g.builder.full(tx)
	g.publish(t, start, true)
}

// publish swaps a new table in and records the update.
func (g *Gateway) publish(t *Table, start time.Time, rebuilt bool) {
	g.table.Store(t)
	if rebuilt {
		g.metrics.rebuilds.Inc()
		g.metrics.rebuildTime.Observe(time.Since(start).Seconds())
	}
	g.metrics.routes.Set(float64(len(t.routes)))
	g.metrics.tableIndex.Set(float64(t.index))
}

// full builds the table from scratch and resets the incremental state.
func (b *builder) full(tx *registry.Tx) *Table {
	routes := tx.Routes(nil)
	cfg := tx.ConfigList(nil, ConfigPrefix)
	index := max(tx.TableIndex(nil, "routes"), tx.TableIndex(nil, "config"), tx.TableIndex(nil, "services"))

	b.cfg = make(map[string]*registry.ConfigEntry, len(cfg))
	for i := range cfg {
		b.cfg[cfg[i].Key] = &cfg[i]
	}
	b.loadAPIKeys(cfg)

	for id := range b.rmetrics {
		if tx.Route(nil, id) == nil {
			delete(b.rmetrics, id)
			b.g.metrics.forget(id)
		}
	}
	b.specs = make(map[string]*registry.Route, len(routes))
	b.slots = make(map[string]*routeSlot, len(routes))
	b.entries = make(map[string]router.Entry[*routeSlot], len(routes))
	b.byService = map[string]map[string]bool{}
	b.cluster = map[string]*tokenbucket.Limiter{}
	instances := map[string][]registry.Instance{}
	for i := range routes {
		spec := tx.Route(nil, routes[i].ID) // the stored object: changes compare pointers
		insts, seen := instances[spec.Service]
		if !seen {
			insts = tx.ServiceInstances(nil, spec.Service)
			instances[spec.Service] = insts
		}
		b.place(spec, insts)
	}
	b.router = router.Build(b.entryList())
	b.sweep()
	b.g.sharer.SetLimiters(maps.Clone(b.cluster))
	return b.table(index, maps.Clone(b.slots))
}

// table returns a table of the current router; routes is the table's own
// copy of the slots (the builder keeps changing its map).
func (b *builder) table(index uint64, routes map[string]*routeSlot) *Table {
	return &Table{router: b.router, routes: routes, index: index, none: b.none}
}

func (b *builder) entryList() []router.Entry[*routeSlot] {
	out := make([]router.Entry[*routeSlot], 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, e)
	}
	return out
}

// place compiles a stored route into the incremental state. It reports
// whether the router must be rebuilt (the route came, went from the
// router, or its matching changed).
func (b *builder) place(spec *registry.Route, insts []registry.Instance) bool {
	id := spec.ID
	b.specs[id] = spec
	if b.byService[spec.Service] == nil {
		b.byService[spec.Service] = map[string]bool{}
	}
	b.byService[spec.Service][id] = true
	r, err := b.compile(spec, insts, b.cfg)
	if err != nil {
		b.g.logger.Warn("gateway route skipped", "route", id, "err", err)
		return b.unplace(id)
	}
	if r.limiter != nil && spec.RateLimit.Scope == "cluster" {
		b.cluster[id] = r.limiter
	} else {
		delete(b.cluster, id)
	}
	entry := router.Entry[*routeSlot]{
		ID: spec.ID, Hosts: spec.Hosts, Paths: spec.Paths, Exact: spec.Match == "exact",
		Methods: spec.Methods, Priority: spec.Priority,
	}
	slot, ok := b.slots[id]
	if ok {
		entry.Value = slot
		old := b.entries[id]
		slot.Store(r)
		b.entries[id] = entry
		b.released = true
		return !sameMatching(old, entry)
	}
	slot = &routeSlot{}
	slot.Store(r)
	entry.Value = slot
	b.slots[id] = slot
	b.entries[id] = entry
	return true
}

// unplace takes a route out of the router; it reports whether it was in.
func (b *builder) unplace(id string) bool {
	delete(b.cluster, id)
	if _, ok := b.slots[id]; !ok {
		return false
	}
	delete(b.slots, id)
	delete(b.entries, id)
	b.released = true
	return true
}

func sameMatching(a, b router.Entry[*routeSlot]) bool {
	return slices.Equal(a.Hosts, b.Hosts) && slices.Equal(a.Paths, b.Paths) && a.Exact == b.Exact &&
		slices.Equal(a.Methods, b.Methods) && a.Priority == b.Priority
}

// changes are what the store's commits changed since the watcher last
// looked, as the gateway cares: routes by id, services whose instances
// changed, whether the gateway config changed, a restore.
type changes struct {
	routes   map[string]bool
	services map[string]bool
	config   bool
	reset    bool
	index    uint64
}

func (c *changes) empty() bool {
	return len(c.routes) == 0 && len(c.services) == 0 && !c.config && !c.reset && c.index == 0
}

// apply updates the table from changes; it reports whether the router was
// rebuilt.
func (b *builder) apply(c *changes, cur *Table) (*Table, bool) {
	tx := b.g.store.ReadTxn()
	defer tx.Abort()
	if c.reset || c.config {
		t := b.full(tx)
		if !c.reset {
			// The table reflects every commit the watcher heard of, not
			// only those that changed a table it reads.
			t.index = max(t.index, c.index, cur.index)
		}
		return t, true
	}
	rebuild := false
	clusterBefore := len(b.cluster)
	compiled := map[string]bool{}
	for id := range c.routes {
		spec := tx.Route(nil, id)
		old := b.specs[id]
		if spec == old {
			continue
		}
		compiled[id] = true
		if old != nil && (spec == nil || spec.Service != old.Service) {
			delete(b.byService[old.Service], id)
			if len(b.byService[old.Service]) == 0 {
				delete(b.byService, old.Service)
			}
		}
		if spec == nil {
			delete(b.specs, id)
			if b.unplace(id) {
				rebuild = true
			}
			if b.rmetrics[id] != nil {
				delete(b.rmetrics, id)
				b.g.metrics.forget(id)
			}
			continue
		}
		if b.place(spec, tx.ServiceInstances(nil, spec.Service)) {
			rebuild = true
		}
	}
	for svc := range c.services {
		ids := b.byService[svc]
		if len(ids) == 0 {
			continue
		}
		insts := tx.ServiceInstances(nil, svc)
		for id := range ids {
			if compiled[id] {
				continue
			}
			if b.place(b.specs[id], insts) {
				rebuild = true
			}
		}
	}
	routes := cur.routes
	if rebuild {
		b.router = router.Build(b.entryList())
		routes = maps.Clone(b.slots)
	}
	if rebuild || len(b.cluster) != clusterBefore || len(c.routes) > 0 {
		b.g.sharer.SetLimiters(maps.Clone(b.cluster))
	}
	return b.table(max(c.index, cur.index), routes), rebuild
}

// sweepEvery is how often unused upstreams, breakers and limiters are
// dropped after incremental updates released some: the sweep walks every
// route, so it does not run on each change.
const sweepEvery = 5 * time.Second

// sweep drops the upstreams, breakers and limiters no route uses.
func (b *builder) sweep() {
	usedUp := map[string]bool{}
	usedBreakers := map[string]bool{}
	usedLimiters := map[string]bool{}
	for _, slot := range b.slots {
		r := slot.Load()
		for i := range r.endpoints {
			usedUp[r.endpoints[i].up.addr] = true
		}
		for _, k := range r.breakerKeys {
			usedBreakers[k] = true
		}
		if r.limiterKey != "" {
			usedLimiters[r.limiterKey] = true
		}
	}
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
	b.swept, b.released = time.Now(), false
}

// compile turns one stored route and its service's instances into a route.
func (b *builder) compile(spec *registry.Route, insts []registry.Instance, cfg map[string]*registry.ConfigEntry) (*route, error) {
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
		ep := endpoint{id: in.ID, up: b.pool.get(addr)}
		if cb := spec.CircuitBreaker; cb != nil {
			var key string
			ep.breaker, key = b.breaker(spec.ID, in.ID, addr, cb.ConsecutiveFailures, openFor)
			r.breakerKeys = append(r.breakerKeys, key)
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
		r.limiter, r.limitKey, r.limiterKey = l, parseKeySpec(rl.Key), key
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

func (b *builder) breaker(routeID, instID, addr string, threshold int, openFor time.Duration) (*breaker.Breaker, string) {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d", routeID, instID, addr, threshold, openFor)
	if br := b.breakers[key]; br != nil {
		return br, key
	}
	gauge := b.g.metrics.breakerState.WithLabelValues(routeID, instID)
	gauge.Set(0)
	br := breaker.New(threshold, openFor, func(s breaker.State) {
		gauge.Set(float64(s))
		b.g.logger.Info("circuit breaker", "route", routeID, "instance", instID, "upstream", addr, "state", s.String())
	})
	b.breakers[key] = br
	return br, key
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
