// Package dns serves the registry over DNS (docs/dns.md), the way resolvers
// that forward a domain to port 8600 expect:
//
//	NAME.service.DOMAIN         A/AAAA of the served instances
//	TAG.NAME.service.DOMAIN     the same, only instances carrying TAG
//	_NAME._tcp.service.DOMAIN   SRV (RFC 2782), addresses in the additional section
//	_NAME._TAG.service.DOMAIN   SRV of the instances carrying TAG
//	NODE.node.DOMAIN            A/AAAA of a cluster member
//	HEX.addr.DOMAIN             A/AAAA of an SRV target that is no node's address
//
// Answers come from the node's local replica (the registry store) and from
// gossip membership, so every node answers, with or without a Raft leader.
// Names outside DOMAIN go to the configured recursors, or are REFUSED.
//
// Every use of github.com/miekg/dns is inside this package, so that moving
// to its successor stays a local change.
package dns
