package dns

import (
	"math/rand/v2"
	"net/netip"
	"time"

	miekg "github.com/miekg/dns"
)

// Message sizes.
const (
	// maxUDPSize is the largest UDP answer, and the EDNS0 size this server
	// advertises: a client's larger buffer is honoured up to it.
	maxUDPSize = 4096
	// minRRLen is the smallest answer record (a compressed A record), so
	// that no more than size/minRRLen records are ever built for a message.
	minRRLen = 16
)

// respond answers one query. Over UDP an answer larger than the client's
// buffer (512 bytes, or its EDNS0 size up to maxUDPSize) keeps what fits and
// sets TC; over TCP it is complete up to the 64 KiB a message can hold.
func (s *Server) respond(req *miekg.Msg, tcp bool) *miekg.Msg {
	m := new(miekg.Msg)
	if len(req.Question) != 1 {
		m.SetRcodeFormatError(req)
		return m
	}
	m.SetReply(req)
	m.Compress = true
	if req.Opcode != miekg.OpcodeQuery {
		m.SetRcode(req, miekg.RcodeNotImplemented)
		return m
	}
	size := miekg.MinMsgSize
	opt := req.IsEdns0()
	if opt != nil {
		size = max(miekg.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
		if opt.Version() != 0 {
			m.SetEdns0(maxUDPSize, false)
			m.Rcode = miekg.RcodeBadVers // RFC 6891 6.1.3
			return m
		}
	}
	if tcp {
		size = miekg.MaxMsgSize
	}
	q := req.Question[0]
	n, inDomain := parseName(q.Name, s.domain)
	if !inDomain {
		return s.forward(req, tcp, size)
	}
	m.Authoritative = true
	m.RecursionAvailable = len(s.cfg.Recursors) > 0
	if opt != nil {
		m.SetEdns0(maxUDPSize, false)
	}
	if q.Qclass != miekg.ClassINET && q.Qclass != miekg.ClassANY {
		m.Rcode = miekg.RcodeRefused
		return m
	}
	a := s.answer(q, n, size/minRRLen+1)
	switch {
	case !a.exists:
		m.Rcode = miekg.RcodeNameError
		m.Ns = []miekg.RR{s.soa()}
	case len(a.records) == 0:
		m.Ns = []miekg.RR{s.soa()}
	default:
		s.fit(m, a, size)
	}
	return m
}

// answer is what a name holds for one query type: records in random order,
// each with the address records of its target (SRV) for the additional
// section.
type answer struct {
	exists  bool
	records []record
	more    bool // records were left out: more than a message of this size can hold
}

type record struct {
	rr    miekg.RR
	extra miekg.RR // nil: none
}

// fit puts as many records of a into m as fit size bytes, with their
// additional records; TC is set when some are left out.
func (s *Server) fit(m *miekg.Msg, a answer, size int) {
	answers := make([]miekg.RR, len(a.records))
	extras := false
	for i, r := range a.records {
		answers[i] = r.rr
		extras = extras || r.extra != nil
	}
	if !extras {
		m.Answer = answers
		m.Truncate(size) // keeps the records that fit, in one pass
		m.Truncated = m.Truncated || a.more
		return
	}
	// SRV: an answer goes with its target's address record. The most
	// records that fit: a binary search over the count (a message with
	// fewer records is never longer).
	opt := m.IsEdns0()
	m.Compress = true
	extra := make([]miekg.RR, 0, len(a.records)+1)
	seen := make(map[string]bool, len(a.records))
	build := func(k int) {
		m.Answer = answers[:k]
		extra = extra[:0]
		clear(seen)
		for _, r := range a.records[:k] {
			if r.extra != nil && !seen[r.extra.Header().Name] {
				seen[r.extra.Header().Name] = true
				extra = append(extra, r.extra)
			}
		}
		if opt != nil {
			extra = append(extra, opt)
		}
		m.Extra = extra
	}
	n := len(a.records)
	build(n)
	if !a.more && m.Len() <= size {
		return
	}
	lo, hi := 0, n
	for lo < hi {
		mid := (lo + hi + 1) / 2
		build(mid)
		if m.Len() <= size {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	build(lo)
	m.Truncated = true
}

// answer collects the records of name n for question q, at most limit.
func (s *Server) answer(q miekg.Question, n name, limit int) answer {
	switch n.kind {
	case kindApex:
		a := answer{exists: true}
		if q.Qtype == miekg.TypeSOA || q.Qtype == miekg.TypeANY {
			a.records = []record{{rr: s.soa()}}
		}
		return a
	case kindBranch:
		return answer{exists: true}
	case kindService:
		return s.serviceAnswer(q, n, limit)
	case kindNode:
		mb, ok := s.member(n.node)
		if !ok {
			return answer{}
		}
		a := answer{exists: true}
		if rr := s.addrRR(q.Name, q.Qtype, mb.Addr); rr != nil {
			a.records = []record{{rr: rr}}
		}
		return a
	case kindAddr:
		a := answer{exists: true}
		if rr := s.addrRR(q.Name, q.Qtype, n.addr); rr != nil {
			a.records = []record{{rr: rr}}
		}
		return a
	}
	return answer{}
}

// serviceAnswer answers a service name: A/AAAA (ANY: both) with the
// addresses of the served instances, SRV with their ports and targets; a
// random sample of at most limit of them.
func (s *Server) serviceAnswer(q miekg.Question, n name, limit int) answer {
	for _, c := range n.candidates {
		v := s.view(c.service)
		if v == nil {
			continue
		}
		var list []*endpoint
		switch {
		case c.tag != "":
			var ok bool
			if list, ok = tagged(v, c.tag, q.Qtype); !ok {
				continue // the tag reading of a name that is no tag
			}
		case q.Qtype == miekg.TypeSRV:
			list = v.served
		case q.Qtype == miekg.TypeA:
			list = v.v4
		case q.Qtype == miekg.TypeAAAA:
			list = v.v6
		case q.Qtype == miekg.TypeANY:
			list = append(append(make([]*endpoint, 0, len(v.v4)+len(v.v6)), v.v4...), v.v6...)
		}
		a := answer{exists: true, more: len(list) > limit}
		a.records = make([]record, 0, min(len(list), limit))
		sample(list, limit, func(e *endpoint) {
			if q.Qtype == miekg.TypeSRV {
				a.records = append(a.records, s.srvRecord(q.Name, e))
			} else {
				a.records = append(a.records, record{rr: s.ipRR(q.Name, e)})
			}
		})
		return a
	}
	return answer{}
}

// tagged lists the served endpoints of v carrying tag that answer qtype (A
// and AAAA: one per address); ok is false when no endpoint of v, served or
// not, carries the tag.
func tagged(v *view, tag string, qtype uint16) (list []*endpoint, ok bool) {
	var seen map[netip.Addr]bool
	for i := range v.endpoints {
		e := &v.endpoints[i]
		if !e.hasTag(tag) {
			continue
		}
		ok = true
		if !e.served {
			continue
		}
		switch qtype {
		case miekg.TypeSRV:
		case miekg.TypeA, miekg.TypeAAAA, miekg.TypeANY:
			if !e.addr.IsValid() || seen[e.addr] ||
				qtype == miekg.TypeA && !e.addr.Is4() || qtype == miekg.TypeAAAA && !e.addr.Is6() {
				continue
			}
			if seen == nil {
				seen = make(map[netip.Addr]bool)
			}
			seen[e.addr] = true
		default:
			continue
		}
		list = append(list, e)
	}
	return list, ok
}

// sample calls f with k = min(limit, len(list)) distinct elements of list
// in random order. A small sample of a long list costs what it takes, not
// a shuffle of the list.
func sample(list []*endpoint, limit int, f func(*endpoint)) {
	n := len(list)
	k := min(limit, n)
	if 4*k >= n {
		cp := append([]*endpoint(nil), list...)
		for i := 0; i < k; i++ { // Fisher-Yates, k steps
			j := i + rand.IntN(n-i)
			cp[i], cp[j] = cp[j], cp[i]
			f(cp[i])
		}
		return
	}
	taken := make([]uint64, (n+63)/64)
	for picked := 0; picked < k; {
		i := rand.IntN(n)
		if taken[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		taken[i/64] |= 1 << (i % 64)
		picked++
		f(list[i])
	}
}

// srvRecord is the SRV record of one instance. Its target is the owner
// node's name when the instance listens on the node's address, else the
// instance address's own name (HEX.addr.DOMAIN, or a host name as
// registered); the target's address record goes in the additional section.
func (s *Server) srvRecord(qname string, e *endpoint) record {
	srv := &miekg.SRV{
		Hdr:      miekg.RR_Header{Name: qname, Rrtype: miekg.TypeSRV, Class: miekg.ClassINET, Ttl: s.ttl},
		Priority: 1, Weight: 1, Port: e.port,
	}
	if !e.addr.IsValid() {
		srv.Target = e.host
		return record{rr: srv}
	}
	if mb, ok := s.member(e.key); ok && mb.Addr == e.addr {
		srv.Target = e.nodeTarget
		return record{rr: srv, extra: e.nodeExtra}
	}
	srv.Target = e.addrTarget
	return record{rr: srv, extra: e.addrExtra}
}

// addrRR is the A or AAAA record of addr named owner, or nil when qtype
// asks for the other family.
func (s *Server) addrRR(owner string, qtype uint16, addr netip.Addr) miekg.RR {
	hdr := miekg.RR_Header{Name: owner, Class: miekg.ClassINET, Ttl: s.ttl}
	switch {
	case addr.Is4() && (qtype == miekg.TypeA || qtype == miekg.TypeANY):
		hdr.Rrtype = miekg.TypeA
		return &miekg.A{Hdr: hdr, A: addr.AsSlice()}
	case addr.Is6() && (qtype == miekg.TypeAAAA || qtype == miekg.TypeANY):
		hdr.Rrtype = miekg.TypeAAAA
		return &miekg.AAAA{Hdr: hdr, AAAA: addr.AsSlice()}
	}
	return nil
}

// ipRR is the A or AAAA record of an endpoint's address named owner.
func (s *Server) ipRR(owner string, e *endpoint) miekg.RR {
	hdr := miekg.RR_Header{Name: owner, Class: miekg.ClassINET, Ttl: s.ttl}
	if e.addr.Is4() {
		hdr.Rrtype = miekg.TypeA
		return &miekg.A{Hdr: hdr, A: e.ip}
	}
	hdr.Rrtype = miekg.TypeAAAA
	return &miekg.AAAA{Hdr: hdr, AAAA: e.ip}
}

// soa is the zone's SOA record: the authority section of negative answers
// (its minimum, the TTL, is how long they may be cached).
func (s *Server) soa() miekg.RR {
	return &miekg.SOA{
		Hdr: miekg.RR_Header{Name: s.zone, Rrtype: miekg.TypeSOA, Class: miekg.ClassINET, Ttl: s.ttl},
		Ns:  "ns." + s.zone, Mbox: "hostmaster." + s.zone,
		Serial: uint32(time.Now().Unix()), Refresh: 3600, Retry: 600, Expire: 86400, Minttl: s.ttl,
	}
}
