package dns

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"
	miekg "github.com/miekg/dns"

	"github.com/nexus/nexus/registry"
)

// Catalog reads the instances of a service from the node's replica.
type Catalog interface {
	// ServiceInstances returns the instances of service (none: the service
	// does not exist) and channels of which at least one is closed once
	// they may have changed.
	ServiceInstances(service string) ([]registry.Instance, []<-chan struct{})
}

// Membership lists the cluster's members (gossip), for NODE.node names and
// for choosing SRV targets.
type Membership interface {
	Members() []Member
}

// Member is one cluster member.
type Member struct {
	Name   string
	Addr   netip.Addr // advertised address; invalid when unknown
	Status string     // alive, suspect, failed or left
}

// StoreCatalog reads a registry store: the node's local replica.
type StoreCatalog struct {
	Store *registry.Store
}

// ServiceInstances implements Catalog.
func (c StoreCatalog) ServiceInstances(service string) ([]registry.Instance, []<-chan struct{}) {
	ws := memdb.NewWatchSet()
	// Taken before the transaction, so that a restore in between is seen.
	ws.Add(c.Store.AbandonCh())
	tx := c.Store.ReadTxn()
	defer tx.Abort()
	insts := tx.ServiceInstances(ws, service)
	chans := make([]<-chan struct{}, 0, len(ws))
	for ch := range ws {
		chans = append(chans, ch)
	}
	return insts, chans
}

// served decides whether DNS hands out an instance: passing ones always,
// warning ones unless only-passing, critical ones never. It is the one place
// for that decision (maintenance joins it here).
func (s *Server) served(in *registry.Instance) bool {
	switch in.Status {
	case registry.StatusPassing:
		return true
	case registry.StatusWarning:
		return !s.cfg.OnlyPassing
	}
	return false
}

// endpoint is what DNS needs of one instance, with the parts of its
// records that do not depend on the question.
type endpoint struct {
	node   string // as registered
	key    string // node in lower case
	addr   netip.Addr
	ip     net.IP // addr's bytes, shared by its answer records
	host   string // fully qualified host name when the address is one (addr invalid)
	port   uint16
	tags   []string
	served bool
	// SRV targets for an IP address: the node's name, or the address's
	// own; and their address records for the additional section.
	nodeTarget, addrTarget string
	nodeExtra, addrExtra   miekg.RR
}

func (e *endpoint) hasTag(tag string) bool {
	for _, t := range e.tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// view is a service's endpoints as of one read of the catalog; stale once
// one of its channels is closed.
type view struct {
	endpoints []endpoint
	served    []*endpoint // SRV answers
	v4, v6    []*endpoint // A and AAAA answers: served, one per address
	changed   []<-chan struct{}
}

func (v *view) stale() bool {
	for _, ch := range v.changed {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

// maxViews bounds the view cache; past it the cache starts over.
const maxViews = 10000

// views caches one view per existing service, so that a query reads the
// catalog only after a change.
type views struct {
	mu sync.RWMutex
	m  map[string]*view
}

// view returns the current view of service, nil if it has no instances.
func (s *Server) view(service string) *view {
	s.views.mu.RLock()
	v := s.views.m[service]
	s.views.mu.RUnlock()
	if v != nil && !v.stale() {
		return v
	}
	insts, changed := s.catalog.ServiceInstances(service)
	if len(insts) == 0 {
		if v != nil {
			s.views.mu.Lock()
			delete(s.views.m, service)
			s.views.mu.Unlock()
		}
		return nil
	}
	v = s.buildView(insts)
	v.changed = changed
	s.views.mu.Lock()
	if len(s.views.m) >= maxViews {
		s.views.m = make(map[string]*view)
	}
	s.views.m[service] = v
	s.views.mu.Unlock()
	return v
}

func (s *Server) buildView(insts []registry.Instance) *view {
	v := &view{endpoints: make([]endpoint, len(insts))}
	for i := range insts {
		in := &insts[i]
		e := &v.endpoints[i]
		*e = endpoint{node: in.Node, key: strings.ToLower(in.Node), port: uint16(in.Port), tags: in.Tags, served: s.served(in)}
		if a, err := netip.ParseAddr(in.Address); err == nil {
			e.addr = a.Unmap()
			e.ip = e.addr.AsSlice()
			e.nodeTarget = in.Node + ".node." + s.zone
			e.addrTarget = addrName(e.addr, s.domain)
			e.nodeExtra = s.addrRR(e.nodeTarget, miekg.TypeANY, e.addr)
			e.addrExtra = s.addrRR(e.addrTarget, miekg.TypeANY, e.addr)
		} else {
			e.host = strings.TrimSuffix(in.Address, ".") + "."
		}
	}
	seen := make(map[netip.Addr]bool)
	for i := range v.endpoints {
		e := &v.endpoints[i]
		if !e.served {
			continue
		}
		v.served = append(v.served, e)
		if !e.addr.IsValid() || seen[e.addr] {
			continue
		}
		seen[e.addr] = true
		if e.addr.Is4() {
			v.v4 = append(v.v4, e)
		} else {
			v.v6 = append(v.v6, e)
		}
	}
	return v
}

// memberMaxAge is how long a membership snapshot serves: membership
// changes show in answers within it.
const memberMaxAge = time.Second

// members caches membership by lower-case name. One query at a time
// refreshes it; the others meanwhile use the previous snapshot.
type members struct {
	refresh sync.Mutex
	cur     atomic.Pointer[memberSnapshot]
}

type memberSnapshot struct {
	at     time.Time
	byName map[string]Member
}

// member returns the member whose lower-case name is key.
func (s *Server) member(key string) (Member, bool) {
	snap := s.members.cur.Load()
	if snap == nil || time.Since(snap.at) > memberMaxAge {
		if snap == nil {
			s.members.refresh.Lock()
		} else if !s.members.refresh.TryLock() {
			mb, ok := snap.byName[key]
			return mb, ok
		}
		if cur := s.members.cur.Load(); cur != snap && cur != nil {
			snap = cur // refreshed while this query waited
		} else {
			snap = s.loadMembers()
			s.members.cur.Store(snap)
		}
		s.members.refresh.Unlock()
	}
	mb, ok := snap.byName[key]
	return mb, ok
}

func (s *Server) loadMembers() *memberSnapshot {
	m := make(map[string]Member)
	if s.membership != nil {
		for _, mb := range s.membership.Members() {
			if mb.Status == "left" || !mb.Addr.IsValid() {
				continue
			}
			mb.Addr = mb.Addr.Unmap()
			m[strings.ToLower(mb.Name)] = mb
		}
	}
	return &memberSnapshot{at: time.Now(), byName: m}
}
