// Package ratelimit shares the gateway's cluster-scope rate limits between
// the nodes: each node runs its token buckets (internal/tokenbucket) at a
// share of the route's rate, from the demand the others report over gossip.
package ratelimit

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// Exchanger carries small broadcasts between the gateway nodes of a cluster.
// The cluster package implements it over gossip (memberlist user
// broadcasts); messages are best effort, unordered and may be lost.
type Exchanger interface {
	// Broadcast sends msg (at most MaxMessage bytes) to every other live
	// gateway node.
	Broadcast(msg []byte)
	// OnMessage registers the handler of messages from other nodes; from is
	// the sender's node name. Called once, before the first Broadcast.
	OnMessage(func(from string, msg []byte))
	// Peers returns the number of live gateway nodes, this one included.
	Peers() int
}

// MaxMessage bounds one broadcast; more routes are split over several.
const MaxMessage = 1024

// staleAfter is how many epochs a node's report counts.
const staleAfter = 3

// minShareOfFair is the demand every node is assumed to have at least, as a
// fraction of its fair share, so that a node whose traffic just started is
// not starved for a whole interval.
const minShareOfFair = 0.05

const msgVersion = 1

// Sharer runs cluster-scope rate limits. Time is cut into epochs of one
// interval aligned on the wall clock (nodes run NTP). At each epoch boundary
// every node broadcasts the demand (requests seen, refused ones included) of
// each cluster-scope route during the epoch that just ended; a quarter of an
// interval later, when the other nodes' reports for that epoch have arrived,
// every node computes the same max-min fair allocation of the route's rate
// from the same reports and enforces its own part: nodes that want less than
// an equal split get what they want, the rest is split among the others, and
// unused rate is spread evenly. Since the nodes agree on the inputs, the
// allocations add up to the route's rate; the cost is one interval of lag
// after a change of demand. A node whose report is missing counts with its
// last report of the previous staleAfter epochs, else with no demand.
type Sharer struct {
	ex       Exchanger
	node     string
	interval time.Duration
	logger   *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	limiters map[string]*tokenbucket.Limiter
	reports  map[string]map[string]report // node (this one included) → route → latest report
}

type report struct {
	epoch  int64
	demand float64 // requests per second
}

// NewSharer returns a sharer; with a nil Exchanger it does nothing and
// cluster-scope limiters keep their full rate on each node.
func NewSharer(ex Exchanger, node string, interval time.Duration, logger *slog.Logger) *Sharer {
	return &Sharer{ex: ex, node: node, interval: interval, logger: logger, now: time.Now,
		limiters: map[string]*tokenbucket.Limiter{}, reports: map[string]map[string]report{}}
}

// SetLimiters replaces the cluster-scope limiters, by route id. A limiter
// seen for the first time starts with an equal share of its rate, so that a
// new route does not admit its full rate on every node until the first
// exchange.
func (s *Sharer) SetLimiters(ls map[string]*tokenbucket.Limiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ex != nil {
		peers := max(s.ex.Peers(), 1)
		for id, l := range ls {
			if s.limiters[id] != l {
				l.SetShare(1 / float64(peers))
			}
		}
	}
	s.limiters = ls
}

// Run exchanges demand every interval until ctx ends. onShare, if not nil,
// is told each route's new share.
func (s *Sharer) Run(ctx context.Context, onShare func(route string, share float64)) {
	if s.ex == nil {
		return
	}
	s.ex.OnMessage(s.receive)
	for {
		now := s.now()
		boundary := now.Truncate(s.interval).Add(s.interval)
		if !sleep(ctx, boundary.Sub(now)) {
			return
		}
		for _, msg := range s.Report(boundary) {
			s.ex.Broadcast(msg)
		}
		if !sleep(ctx, s.interval/4) {
			return
		}
		s.Apply(boundary, onShare)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Sharer) epoch(t time.Time) int64 { return t.UnixNano() / int64(s.interval) }

// Report measures the local demand of the epoch ending at boundary, records
// it and returns the messages to broadcast.
func (s *Sharer) Report(boundary time.Time) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	epoch := s.epoch(boundary)
	ids := make([]string, 0, len(s.limiters))
	for id := range s.limiters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	local := make(map[string]float64, len(ids))
	mine := s.reports[s.node]
	if mine == nil {
		mine = map[string]report{}
		s.reports[s.node] = mine
	}
	for _, id := range ids {
		d := float64(s.limiters[id].Drain()) / s.interval.Seconds()
		local[id] = d
		mine[id] = report{epoch: epoch, demand: d}
	}
	return encode(epoch, ids, local)
}

// Apply sets every cluster-scope limiter's share from the reports of the
// epoch ending at boundary.
func (s *Sharer) Apply(boundary time.Time, onShare func(route string, share float64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	epoch := s.epoch(boundary)
	peers := max(s.ex.Peers(), 1)
	for id, l := range s.limiters {
		rps, _ := l.Rate()
		share := s.share(id, epoch, rps, peers)
		l.SetShare(share)
		if onShare != nil {
			onShare(id, share)
		}
	}
	s.forgetStale(epoch)
}

// share computes this node's fraction of a route's rate. Called with s.mu held.
func (s *Sharer) share(id string, epoch int64, rate float64, peers int) float64 {
	var local float64
	if r, ok := s.reports[s.node][id]; ok && epoch-r.epoch < staleAfter {
		local = r.demand
	}
	demands := []float64{local}
	for node, routes := range s.reports {
		if node == s.node {
			continue
		}
		if r, ok := routes[id]; ok && epoch-r.epoch < staleAfter {
			demands = append(demands, r.demand)
		}
	}
	for len(demands) < peers {
		demands = append(demands, 0) // live nodes that have not reported
	}
	alloc := allocate(rate, demands)
	return alloc[0] / rate
}

// allocate splits rate over demands max-min fairly; index 0 is the local
// node. Every demand counts as at least minShareOfFair of an equal split.
func allocate(rate float64, demands []float64) []float64 {
	n := len(demands)
	floor := rate / float64(n) * minShareOfFair
	order := make([]int, n)
	want := make([]float64, n)
	for i, d := range demands {
		order[i] = i
		want[i] = math.Max(d, floor)
	}
	sort.SliceStable(order, func(a, b int) bool { return want[order[a]] < want[order[b]] })
	out := make([]float64, n)
	remaining := rate
	for k, i := range order {
		give := math.Min(want[i], remaining/float64(n-k))
		out[i] = give
		remaining -= give
	}
	for i := range out {
		out[i] += remaining / float64(n)
	}
	return out
}

func (s *Sharer) forgetStale(epoch int64) {
	for node, routes := range s.reports {
		for id, r := range routes {
			if epoch-r.epoch >= staleAfter {
				delete(routes, id)
			}
		}
		if len(routes) == 0 {
			delete(s.reports, node)
		}
	}
}

func (s *Sharer) receive(from string, msg []byte) {
	if from == s.node {
		return
	}
	epoch, demands, err := decode(msg)
	if err != nil {
		s.logger.Debug("ignoring a malformed rate-limit summary", "from", from, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	routes := s.reports[from]
	if routes == nil {
		routes = map[string]report{}
		s.reports[from] = routes
	}
	for id, d := range demands {
		if r, ok := routes[id]; !ok || r.epoch <= epoch {
			routes[id] = report{epoch: epoch, demand: d}
		}
	}
}

// encode packs (route, demand) pairs: version byte, uvarint epoch, then
// repeated uvarint(len id) id uvarint(demand × 1000), split at MaxMessage
// bytes.
func encode(epoch int64, ids []string, demand map[string]float64) [][]byte {
	var out [][]byte
	head := binary.AppendUvarint([]byte{msgVersion}, uint64(epoch))
	msg := append([]byte(nil), head...)
	for _, id := range ids {
		var rec []byte
		rec = binary.AppendUvarint(rec, uint64(len(id)))
		rec = append(rec, id...)
		rec = binary.AppendUvarint(rec, uint64(math.Round(demand[id]*1000)))
		if len(msg)+len(rec) > MaxMessage && len(msg) > len(head) {
			out = append(out, msg)
			msg = append([]byte(nil), head...)
		}
		msg = append(msg, rec...)
	}
	if len(msg) > len(head) {
		out = append(out, msg)
	}
	return out
}

var errMalformed = errors.New("malformed rate-limit summary")

func decode(msg []byte) (int64, map[string]float64, error) {
	if len(msg) == 0 || msg[0] != msgVersion {
		return 0, nil, errMalformed
	}
	epoch, k := binary.Uvarint(msg[1:])
	if k <= 0 || epoch > math.MaxInt64 {
		return 0, nil, errMalformed
	}
	out := map[string]float64{}
	b := msg[1+k:]
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n || n > 1024 {
			return 0, nil, errMalformed
		}
		id := string(b[k : k+int(n)])
		b = b[k+int(n):]
		d, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, nil, errMalformed
		}
		b = b[k:]
		out[id] = float64(d) / 1000
	}
	return int64(epoch), out, nil
}
