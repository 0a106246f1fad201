package cluster

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// msgKindExchange tags user messages of the gateway exchange. The first byte
// of every user message is its kind, so more kinds can be added.
const msgKindExchange byte = 1

// exchange carries small best-effort messages between the nodes (the
// gateway's cluster-scope rate-limit summaries): one UDP packet per alive
// member, no retransmission, the sender's name in front.
type exchange struct {
	mu      sync.RWMutex
	handler func(from string, msg []byte)
}

// Broadcast sends msg to every other alive member (best effort).
func (n *Node) Broadcast(msg []byte) {
	name := n.cfg.Node
	if len(name) > 255 {
		return
	}
	buf := make([]byte, 0, 2+len(name)+len(msg))
	buf = append(buf, msgKindExchange, byte(len(name)))
	buf = append(buf, name...)
	buf = append(buf, msg...)
	for _, m := range n.ml.Members() {
		if m.Name == name || m.State != memberlist.StateAlive {
			continue
		}
		if err := n.ml.SendBestEffort(m, buf); err != nil {
			n.logger.Debug("exchange send failed", "member", m.Name, "err", err)
		}
	}
}

// OnMessage registers the handler of exchange messages from other nodes.
func (n *Node) OnMessage(fn func(from string, msg []byte)) {
	n.exch.mu.Lock()
	n.exch.handler = fn
	n.exch.mu.Unlock()
}

// Peers returns the number of alive members, this node included.
func (n *Node) Peers() int { return n.ml.NumMembers() }

// deliver hands a received user message to its handler; malformed
// messages are dropped.
func (n *Node) deliver(b []byte) {
	if len(b) < 2 || b[0] != msgKindExchange {
		return
	}
	l := int(b[1])
	if len(b) < 2+l {
		return
	}
	from := string(b[2 : 2+l])
	payload := append([]byte(nil), b[2+l:]...)
	n.exch.mu.RLock()
	fn := n.exch.handler
	n.exch.mu.RUnlock()
	if fn != nil {
		fn(from, payload)
	}
}
