package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/nexus/nexus/fsm"
	nxcommand "github.com/nexus/nexus/fsm/command"
)

// snapshotInspect describes a snapshot file offline (no agent is asked):
// index, term, size, cluster and how many objects of each kind it holds.
// It reads the whole file as a restore would, so a truncated or corrupt
// file is an error.
func snapshotInspect(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		in, closeIn, err := c.openInput(args[0])
		if err != nil {
			return err
		}
		defer closeIn()
		info, err := fsm.Inspect(in, nxcommand.NewCodec())
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		if c.json {
			b, err := json.Marshal(info)
			if err != nil {
				return err
			}
			return printJSON(c.out, b)
		}
		term := strconv.FormatUint(info.Term, 10)
		if info.Term == 0 {
			term = "unknown (written by an older build)"
		}
		if err := printFields(c.out, [][2]string{
			{"File", args[0]},
			{"Format", strconv.Itoa(info.Format)},
			{"Index", strconv.FormatUint(info.Index, 10)},
			{"Term", term},
			{"Size", strconv.FormatInt(info.Size, 10) + " bytes"},
			{"Cluster", info.ClusterID},
		}); err != nil {
			return err
		}
		rows := make([][]string, 0, len(info.Counts))
		for _, k := range info.Counts {
			rows = append(rows, []string{kindLabel(k.Kind), strconv.Itoa(k.Count)})
		}
		fmt.Fprintln(c.out)
		return printTable(c.out, []string{"KIND", "COUNT"}, rows)
	}
}

// openInput opens the file name, or standard input for "-".
func (c *client) openInput(name string) (io.Reader, func(), error) {
	if name == "-" {
		return c.stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// kindLabel names a kind of the state dump for people; kinds it does not
// know (added later) show under their own name.
func kindLabel(kind string) string {
	switch kind {
	case "config":
		return "config keys"
	case "audit":
		return "audit records (not yet archived)"
	case "acl_tokens":
		return "ACL tokens"
	case "acl_policies":
		return "ACL policies"
	case "acl_roles":
		return "ACL roles"
	case "lock_delays":
		return "keys in lock delay"
	case "maintenance":
		return "maintenance records"
	}
	return kind
}
