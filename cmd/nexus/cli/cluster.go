package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

func members(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		type member struct {
			Name        string `json:"name"`
			Address     string `json:"address"`
			Status      string `json:"status"`
			Raft        string `json:"raft"`
			HTTPAddr    string `json:"http_addr"`
			GatewayAddr string `json:"gateway_addr"`
		}
		return showList(c, "/cluster/members", nil, 0,
			[]string{"NAME", "ADDRESS", "STATUS", "RAFT", "HTTP", "GATEWAY"},
			func(m member) []string {
				return []string{m.Name, m.Address, m.Status, m.Raft, m.HTTPAddr, m.GatewayAddr}
			})
	}
}

func raftPeers(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.get("/cluster/raft", nil)
		if err != nil {
			return err
		}
		type raftInfo struct {
			Servers []struct {
				ID       string `json:"id"`
				Address  string `json:"address"`
				Suffrage string `json:"suffrage"`
				Leader   any    `json:"leader"`
			} `json:"servers"`
		}
		return show(c, r, func(ri raftInfo) error {
			rows := make([][]string, 0, len(ri.Servers))
			for _, s := range ri.Servers {
				leader := ""
				switch v := s.Leader.(type) {
				case bool:
					if v {
						leader = "yes"
					}
				case string:
					leader = v
				}
				rows = append(rows, []string{s.ID, s.Address, s.Suffrage, leader})
			}
			return printTable(c.out, []string{"ID", "ADDRESS", "SUFFRAGE", "LEADER"}, rows)
		})
	}
}

func raftRemovePeer(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.call(http.MethodDelete, pathOf("cluster", "peers", args[0]), nil, nil)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		_, err = fmt.Fprintf(c.out, "removed %s from Raft\n", args[0])
		return err
	}
}

func leader(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.get("/cluster/leader", nil)
		if err != nil {
			return err
		}
		return show(c, r, func(l struct {
			Node     string `json:"node"`
			RaftAddr string `json:"raft_addr"`
			HTTPAddr string `json:"http_addr"`
		}) error {
			return printTable(c.out, []string{"NODE", "RAFT_ADDR", "HTTP_ADDR"}, [][]string{{l.Node, l.RaftAddr, l.HTTPAddr}})
		})
	}
}

func status(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.get("/status", nil)
		if err != nil {
			return err
		}
		type nodeStatus struct {
			Node    string `json:"node"`
			Version string `json:"version"`
			Raft    struct {
				State        string `json:"state"`
				Term         uint64 `json:"term"`
				Leader       string `json:"leader"`
				CommitIndex  uint64 `json:"commit_index"`
				AppliedIndex uint64 `json:"applied_index"`
			} `json:"raft"`
			Members       []json.RawMessage `json:"members"`
			Services      int               `json:"services"`
			Routes        int               `json:"routes"`
			ConfigEntries int               `json:"config_entries"`
		}
		return show(c, r, func(s nodeStatus) error {
			u := strconv.FormatUint
			return printFields(c.out, [][2]string{
				{"Node", s.Node},
				{"Version", s.Version},
				{"Raft state", fmt.Sprintf("%s (term %d)", s.Raft.State, s.Raft.Term)},
				{"Leader", s.Raft.Leader},
				{"Commit index", u(s.Raft.CommitIndex, 10)},
				{"Applied index", u(s.Raft.AppliedIndex, 10)},
				{"Members", strconv.Itoa(len(s.Members))},
				{"Services", strconv.Itoa(s.Services)},
				{"Routes", strconv.Itoa(s.Routes)},
				{"Config entries", strconv.Itoa(s.ConfigEntries)},
			})
		})
	}
}

func leave(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.call(http.MethodPost, "/cluster/leave", nil, nil)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		_, err = fmt.Fprintf(c.out, "the node at %s is leaving the cluster\n", c.addr)
		return err
	}
}

func snapshotSave(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		resp, err := c.send(http.MethodGet, "/cluster/snapshot", c.readQuery(nil), nil, "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if args[0] == "-" {
			_, err := io.Copy(c.out, resp.Body)
			return err
		}
		n, err := writeFileAtomic(args[0], resp.Body)
		if err != nil {
			return err
		}
		if c.json {
			b, _ := json.Marshal(map[string]any{"file": args[0], "bytes": n})
			return printJSON(c.out, b)
		}
		_, err = fmt.Fprintf(c.out, "saved snapshot to %s (%d bytes)\n", args[0], n)
		return err
	}
}

// writeFileAtomic writes r to name through a temporary file, so a failed
// download leaves no partial snapshot behind.
func writeFileAtomic(name string, r io.Reader) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

func snapshotRestore(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		in, closeIn, err := c.openInput(args[0])
		if err != nil {
			return err
		}
		defer closeIn()
		resp, err := c.send(http.MethodPut, "/cluster/snapshot", nil, in, "application/octet-stream")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, body)
		}
		_, err = fmt.Fprintf(c.out, "restored snapshot from %s\n", args[0])
		return err
	}
}

func auditList(fs *flag.FlagSet) action {
	resourceType := fs.String("resource-type", "", "`TYPE`: service, instance, config, route, acl or cluster")
	resource := fs.String("resource", "", "`NAME` of the resource (instance: SERVICE/ID)")
	actor := fs.String("actor", "", "only events by this `ACTOR`")
	since := fs.String("since", "", "only events after `TIME` (RFC3339)")
	limit := fs.Int("limit", 0, "at most `N` events (default all)")
	return func(c *client, _ []string) error {
		if *limit < 0 {
			return usagef("--limit must not be negative")
		}
		q := url.Values{}
		for k, v := range map[string]string{"resource_type": *resourceType, "resource": *resource, "actor": *actor, "since": *since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(min(*limit, 10000)))
		}
		type event struct {
			RaftIndex    uint64 `json:"raft_index"`
			Time         string `json:"time"`
			Actor        string `json:"actor"`
			Action       string `json:"action"`
			ResourceType string `json:"resource_type"`
			Resource     string `json:"resource"`
			Node         string `json:"node"`
		}
		return showList(c, "/audit", q, *limit,
			[]string{"INDEX", "TIME", "ACTOR", "ACTION", "TYPE", "RESOURCE", "NODE"},
			func(e event) []string {
				return []string{strconv.FormatUint(e.RaftIndex, 10), e.Time, e.Actor, e.Action, e.ResourceType, e.Resource, e.Node}
			})
	}
}
