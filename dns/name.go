package dns

import (
	"encoding/hex"
	"net/netip"
	"strings"
)

// kind is what a query name inside the domain asks for.
type kind uint8

const (
	kindNone    kind = iota // no such name
	kindApex                // DOMAIN itself
	kindBranch              // service.DOMAIN, node.DOMAIN, addr.DOMAIN: names with children but no records
	kindService             // NAME.service, TAG.NAME.service, _NAME._TAG.service
	kindNode                // NODE.node
	kindAddr                // HEX.addr
)

// maxNameLen is the longest name in presentation form a DNS message can
// carry (255 bytes on the wire).
const maxNameLen = 254

// name is a parsed query name inside the domain.
type name struct {
	kind kind
	// candidates are the (service, tag) readings of a service name, most
	// specific service name first: "v1.api.service" is the service
	// "v1.api", else the tag "v1" of the service "api" (service names may
	// hold dots). The first reading whose service exists is the answer.
	candidates []serviceName
	node       string     // kindNode, lower case
	addr       netip.Addr // kindAddr
}

// serviceName is one reading of a service query; tag "" matches every
// instance.
type serviceName struct {
	service, tag string
}

// parseName reads qname (a fully qualified name, any case) against domain
// (lower case, no trailing dot). inDomain is false for names outside the
// domain: those are forwarded or refused.
func parseName(qname, domain string) (n name, inDomain bool) {
	q := strings.ToLower(qname)
	q = strings.TrimSuffix(q, ".")
	var rest string
	switch {
	case q == domain:
		return name{kind: kindApex}, true
	case strings.HasSuffix(q, "."+domain):
		rest = q[:len(q)-len(domain)-1]
	default:
		return name{}, false
	}
	if len(rest) > maxNameLen { // not off the wire; bounds the readings below
		return name{}, true
	}
	labels := strings.Split(rest, ".")
	for _, l := range labels {
		if l == "" { // "a..service": not a name anything was registered under
			return name{}, true
		}
	}
	last := len(labels) - 1
	head := labels[:last]
	if len(head) == 0 {
		switch labels[last] {
		case "service", "node", "addr":
			return name{kind: kindBranch}, true
		}
		return name{}, true
	}
	switch labels[last] {
	case "service":
		return name{kind: kindService, candidates: serviceCandidates(head)}, true
	case "node":
		return name{kind: kindNode, node: strings.Join(head, ".")}, true
	case "addr":
		if len(head) == 1 {
			if a, ok := decodeAddr(head[0]); ok {
				return name{kind: kindAddr, addr: a}, true
			}
		}
	}
	return name{}, true
}

// serviceCandidates lists the readings of the labels before "service".
//
// RFC 2782: "_NAME._TAG" (both labels with "_"; NAME may span labels) is
// the service NAME with tag TAG, "_tcp" meaning no tag. Otherwise the whole
// is a service name, or its first labels a tag of the service named by the
// remaining ones.
func serviceCandidates(head []string) []serviceName {
	if n := len(head); n >= 2 && strings.HasPrefix(head[0], "_") && strings.HasPrefix(head[n-1], "_") {
		svc := strings.Join(head[:n-1], ".")[1:]
		tag := head[n-1][1:]
		if tag == "tcp" {
			tag = ""
		}
		if svc == "" {
			return nil
		}
		return []serviceName{{service: svc, tag: tag}}
	}
	out := make([]serviceName, 0, len(head))
	out = append(out, serviceName{service: strings.Join(head, ".")})
	for i := 1; i < len(head); i++ {
		out = append(out, serviceName{service: strings.Join(head[i:], "."), tag: strings.Join(head[:i], ".")})
	}
	return out
}

// addrName is the name of an SRV target that is an instance's own IP
// address: its bytes in hex (8 digits for IPv4, 32 for IPv6), as Consul
// names them.
func addrName(a netip.Addr, domain string) string {
	b := a.AsSlice()
	return hex.EncodeToString(b) + ".addr." + domain + "."
}

func decodeAddr(label string) (netip.Addr, bool) {
	if len(label) != 8 && len(label) != 32 {
		return netip.Addr{}, false
	}
	b, err := hex.DecodeString(label)
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}
