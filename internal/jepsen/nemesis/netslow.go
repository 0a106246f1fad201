package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mechanisms of NetSlow.
const (
	SlowNetem    = "netem"    // tc netem delay+jitter+loss on every node link
	SlowFallback = "tbf+drop" // no netem in the kernel: tc tbf rate limit + iptables random drop between nodes
)

// NetSlow slows the node links: tc netem delay and loss on each node's
// interface. Where the kernel lacks sch_netem (some VM kernels do), it falls
// back to a tbf rate limit (queueing delay under load) plus random packet
// loss between nodes (iptables statistic), and says so on the timeline.
type NetSlow struct {
	Delay, Jitter time.Duration // netem delay (default 50ms ± 25ms)
	Loss          float64       // packet loss probability (default 0.05)
	Rate          string        // fallback tbf rate (default 2mbit)

	once sync.Once
	mech string
}

// Name implements Nemesis.
func (*NetSlow) Name() string { return NameNetSlow }

func (s *NetSlow) defaults() {
	if s.Delay == 0 {
		s.Delay, s.Jitter = 50*time.Millisecond, 25*time.Millisecond
	}
	if s.Loss == 0 {
		s.Loss = 0.05
	}
	if s.Rate == "" {
		s.Rate = "2mbit"
	}
}

// Inject implements Nemesis.
func (s *NetSlow) Inject(ctx context.Context, c Cluster, rng *rand.Rand, tl *Timeline) (*Fault, error) {
	s.defaults()
	s.once.Do(func() { s.mech = s.detect(ctx, c, tl) })
	var err error
	var detail string
	if s.mech == SlowNetem {
		detail = fmt.Sprintf("netem delay %v±%v loss %.0f%% on every node link", s.Delay, s.Jitter, s.Loss*100)
		err = forEachNode(c, func(i int) error {
			_, err := c.Exec(ctx, i, nil, s.netemArgs()...)
			return err
		})
	} else {
		detail = fmt.Sprintf("%s (no netem in this kernel): tbf rate %s on every node link, %.0f%% random drop between nodes",
			SlowFallback, s.Rate, s.Loss*100)
		err = forEachNode(c, func(i int) error {
			if _, err := c.Exec(ctx, i, nil, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
				"rate", s.Rate, "burst", "32kbit", "latency", "400ms"); err != nil {
				return err
			}
			var rules []string
			for j := 0; j < c.N(); j++ {
				if j != i {
					rules = append(rules, fmt.Sprintf("-s %s -m statistic --mode random --probability %.4f -j DROP", c.NodeIP(j), s.Loss))
				}
			}
			return applyChain(ctx, c, i, ChainSlow, rules)
		})
	}
	f := &Fault{Nemesis: NameNetSlow, Detail: detail, heal: func(ctx context.Context) error { return s.heal(ctx, c) }}
	for i := 0; i < c.N(); i++ {
		f.Nodes = append(f.Nodes, c.NodeName(i))
	}
	if err != nil {
		_ = f.Heal(context.WithoutCancel(ctx))
		return nil, err
	}
	return f, nil
}

func (s *NetSlow) netemArgs() []string {
	return []string{"tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
		"delay", ms(s.Delay), ms(s.Jitter), "loss", strconv.FormatFloat(s.Loss*100, 'f', 2, 64) + "%"}
}

// detect tries netem once on node 0.
func (s *NetSlow) detect(ctx context.Context, c Cluster, tl *Timeline) string {
	out, err := c.Exec(ctx, 0, nil, s.netemArgs()...)
	if err == nil {
		_, _ = c.Exec(ctx, 0, nil, "tc", "qdisc", "del", "dev", "eth0", "root")
		return SlowNetem
	}
	if tl != nil {
		tl.Note(NameNetSlow, fmt.Sprintf("tc netem unavailable (%s); using %s", strings.TrimSpace(string(out)+" "+err.Error()), SlowFallback))
	}
	return SlowFallback
}

func (s *NetSlow) heal(ctx context.Context, c Cluster) error {
	return forEachNode(c, func(i int) error {
		out, err := c.Exec(ctx, i, nil, "tc", "qdisc", "del", "dev", "eth0", "root")
		if err != nil && !noQdisc(string(out)+err.Error()) {
			return err
		}
		_, err = c.Exec(ctx, i, nil, "iptables", "-F", ChainSlow)
		return err
	})
}

// noQdisc recognizes tc's complaint that there is no root qdisc to delete.
func noQdisc(s string) bool {
	return strings.Contains(s, "handle of zero") || strings.Contains(s, "No such file") || strings.Contains(s, "Invalid handle")
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }
