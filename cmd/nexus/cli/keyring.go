package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sort"
)

// keyringOp returns the action of `nexus keyring install|use|remove KEY`:
// the node applies it on every alive member.
func keyringOp(op string) func(fs *flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		return func(c *client, args []string) error {
			r, err := c.call(http.MethodPost, "/operator/keyring", nil, map[string]string{"op": op, "key": args[0]})
			var ae *apiError
			if errors.As(err, &ae) && ae.code == "keyring_partial" {
				return fmt.Errorf("%w; run the command again once the failed nodes are back", err)
			}
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(c.out, r.body)
			}
			var ans struct {
				Nodes map[string]string `json:"nodes"`
			}
			if err := json.Unmarshal(r.body, &ans); err != nil {
				return err
			}
			names := make([]string, 0, len(ans.Nodes))
			for n := range ans.Nodes {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if _, err := fmt.Fprintf(c.out, "%s: %s %s\n", n, op, ans.Nodes[n]); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// keyringList shows the gossip keys of the node.
func keyringList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.get("/operator/keyring", nil)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		var st struct {
			Primary string   `json:"primary"`
			Keys    []string `json:"keys"`
		}
		if err := json.Unmarshal(r.body, &st); err != nil {
			return err
		}
		for _, k := range st.Keys {
			mark := ""
			if k == st.Primary {
				mark = " (primary)"
			}
			if _, err := fmt.Fprintf(c.out, "%s%s\n", k, mark); err != nil {
				return err
			}
		}
		return nil
	}
}
