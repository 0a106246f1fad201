package cluster

import (
	"time"
)

// reconnectLoop retries failed members every interval, as serf does:
// memberlist forgets a dead member after GossipToTheDeadTime, so two sides of
// a long partition would otherwise never merge again, and a recovered node
// would stay "failed" (and its instances critical) for ever.
func (n *Node) reconnectLoop(interval time.Duration) {
	defer n.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-n.stopCh:
			return
		case <-tick.C:
		}
		var addrs []string
		for _, m := range n.gossip.snapshot() {
			if m.Status == StatusFailed && m.Addr != "" {
				addrs = append(addrs, m.Addr)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		if joined, err := n.ml.Join(addrs); joined > 0 {
			n.logger.Info("reconnected to failed members", "contacted", joined)
		} else {
			n.logger.Debug("failed members still unreachable", "members", addrs, "err", err)
		}
	}
}
