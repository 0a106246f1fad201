package api

import (
	"context"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/registry"
)

// Limits of reads.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
	// PageInstances also ends a page of GET /services once it holds that
	// many instances (the service that reaches it is on the page whole):
	// a page of 1,000 services of 10 instances each was 2.3 MiB of JSON
	// and ~50 ms, whatever the limit meant to ask for.
	PageInstances = 1000
	DefaultWait   = 5 * time.Minute
	MaxWait       = 5 * time.Minute
)

// readResult is the answer of one run of a read.
type readResult struct {
	index uint64 // X-Nexus-Index: highest Raft index that changed this data
	body  any
	err   *apiError
	next  string // X-Nexus-Next cursor, when more items remain
}

// readFunc runs a read on tx. It must pass ws to the store methods whose
// changes move its index (ws is nil for non-blocking reads).
type readFunc func(tx *registry.Tx, ws memdb.WatchSet) readResult

// readOpts are the consistency and blocking parameters of a read.
type readOpts struct {
	blocking   bool
	minIndex   uint64
	wait       time.Duration
	consistent bool
}

func parseReadOpts(args *fasthttp.Args) (readOpts, *apiError) {
	var o readOpts
	if v := args.Peek("index"); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return o, errInvalid("index", "%q is not a non-negative integer", v)
		}
		o.blocking, o.minIndex, o.wait = true, n, DefaultWait
	}
	if v := args.Peek("wait"); v != nil {
		d, err := parseWait(string(v))
		if err != nil {
			return o, err
		}
		o.wait = d
	}
	o.consistent = args.Has("consistent")
	return o, nil
}

// parseWait takes a Go duration ("30s", "5m") or bare seconds; more than
// MaxWait is clamped.
func parseWait(v string) (time.Duration, *apiError) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, errInvalid("wait", "%q is not a duration like 30s or 5m", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, errInvalid("wait", "%q must be positive", v)
	}
	if d > MaxWait {
		d = MaxWait
	}
	return d, nil
}

// listOpts are the paging parameters of a list.
type listOpts struct {
	limit int
	after string
}

func parseListOpts(args *fasthttp.Args) (listOpts, *apiError) {
	o := listOpts{limit: DefaultListLimit}
	if v := args.Peek("limit"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > MaxListLimit {
			return o, errInvalid("limit", "%q must be an integer in 1..%d", v, MaxListLimit)
		}
		o.limit = n
	}
	o.after = string(args.Peek("after"))
	return o, nil
}

// boolArg parses an optional boolean query parameter; a bare ?name is true.
func boolArg(args *fasthttp.Args, name string) (bool, *apiError) {
	if !args.Has(name) {
		return false, nil
	}
	v := string(args.Peek(name))
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errInvalid(name, "%q is not true or false", v)
	}
	return b, nil
}

// casArg parses the optional ?cas=N.
func casArg(args *fasthttp.Args) (*uint64, *apiError) {
	if !args.Has("cas") {
		return nil, nil
	}
	v := string(args.Peek("cas"))
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, errInvalid("cas", "%q must be a non-negative integer", v)
	}
	return &n, nil
}

// serveRead answers a read from the local replica, after a consistent-read
// barrier when ?consistent is given, and blocks while its index is at most
// ?index=N, up to ?wait.
func (s *Server) serveRead(ctx *fasthttp.RequestCtx, rc *reqCtx, fn readFunc) {
	opts, e := parseReadOpts(ctx.QueryArgs())
	if e != nil {
		writeError(ctx, e)
		return
	}
	if opts.consistent {
		if e := s.consistentBarrier(); e != nil {
			writeError(ctx, e)
			return
		}
	}
	var res readResult
	s.block(opts, func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		res = fn(tx, ws)
		return res.index
	})
	s.writeRead(ctx, rc, res)
}

// block runs fn on the local replica; when opts block, again each time
// what fn watched changes while the index it returns is at most
// opts.minIndex, until opts.wait passes or the server shuts down. The
// last run is the answer.
func (s *Server) block(opts readOpts, fn func(tx *registry.Tx, ws memdb.WatchSet) uint64) {
	var wctx context.Context
	if opts.blocking {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(s.base, opts.wait)
		defer cancel()
	}
	for {
		store := s.reader.Store()
		var ws memdb.WatchSet
		if opts.blocking {
			ws = memdb.NewWatchSet()
			// A restore replaces the whole database: wake up and re-read.
			ws.Add(store.AbandonCh())
		}
		tx := store.ReadTxn()
		index := fn(tx, ws)
		tx.Abort()
		if !opts.blocking || index > opts.minIndex {
			return
		}
		s.metrics.blocking.Inc()
		err := ws.WatchCtx(wctx)
		s.metrics.blocking.Dec()
		if err != nil {
			return
		}
		s.metrics.wakeups.Inc()
	}
}

// consistentBarrier waits until this replica has applied everything
// committed before the call (a ?consistent read); nil Consistency answers
// from the local replica.
func (s *Server) consistentBarrier() *apiError {
	if s.consistency == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.Background(), s.applyTimeout)
	err := s.consistency.ConsistentRead(cctx)
	cancel()
	if err != nil {
		return errNoLeader("consistent read impossible: " + err.Error())
	}
	return nil
}

func (s *Server) writeRead(ctx *fasthttp.RequestCtx, rc *reqCtx, res readResult) {
	rc.index = res.index
	if res.err != nil {
		writeError(ctx, res.err)
		return
	}
	if res.next != "" {
		ctx.Response.Header.Set(HeaderNext, res.next)
	}
	writeJSON(ctx, fasthttp.StatusOK, res.body)
}
