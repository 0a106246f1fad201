package dns

import (
	miekg "github.com/miekg/dns"
)

// forward answers a name outside the domain: from the first recursor that
// answers (in the order configured), else SERVFAIL; REFUSED without
// recursors. The query goes out over the protocol it came in on, so that a
// client retrying a truncated answer over TCP gets the whole answer.
func (s *Server) forward(req *miekg.Msg, tcp bool, size int) *miekg.Msg {
	m := new(miekg.Msg)
	if len(s.cfg.Recursors) == 0 {
		m.SetRcode(req, miekg.RcodeRefused)
		return m
	}
	c := &miekg.Client{Net: "udp", Timeout: s.cfg.RecursorTimeout, UDPSize: uint16(size)}
	if tcp {
		c.Net = "tcp"
	}
	for _, addr := range s.cfg.Recursors {
		resp, _, err := c.Exchange(req, addr)
		if err != nil {
			s.logger.Warn("dns recursor failed", "recursor", addr, "name", req.Question[0].Name, "err", err)
			continue
		}
		s.metrics.forwarded.WithLabelValues("answered").Inc()
		resp.Compress = true
		if !tcp {
			resp.Truncate(size)
		}
		return resp
	}
	s.metrics.forwarded.WithLabelValues("failed").Inc()
	m.SetRcode(req, miekg.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}
