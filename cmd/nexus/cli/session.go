package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// sessionView is a session as the API answers it.
type sessionView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Node       string `json:"node"`
	TTL        string `json:"ttl"`
	Behavior   string `json:"behavior"`
	LockDelay  string `json:"lock_delay"`
	RenewIndex uint64 `json:"renew_index"`
	CreateTime string `json:"create_time"`
}

// sessionBody is the body of POST /sessions; empty fields take the API's
// defaults.
type sessionBody struct {
	Name      string `json:"name,omitempty"`
	TTL       string `json:"ttl,omitempty"`
	Behavior  string `json:"behavior,omitempty"`
	LockDelay string `json:"lock_delay,omitempty"`
	Node      string `json:"node,omitempty"`
}

func sessionCreate(fs *flag.FlagSet) action {
	var b sessionBody
	fs.StringVar(&b.Name, "name", "", "session `NAME` (ACL rules on sessions match it)")
	fs.StringVar(&b.TTL, "ttl", "", "`DUR` without a renew before the session ends, 10s..24h (default: none)")
	fs.StringVar(&b.Behavior, "behavior", "", "what ending does to held keys: release (default) or delete")
	fs.StringVar(&b.LockDelay, "lock-delay", "", "`DUR` the keys it held cannot be acquired after it ends (default 15s, max 60s)")
	fs.StringVar(&b.Node, "node", "", "`NODE` whose failure ends the session (default: the node asked)")
	return func(c *client, _ []string) error {
		if err := checkDuration("ttl", b.TTL); err != nil {
			return err
		}
		if err := checkDuration("lock-delay", b.LockDelay); err != nil {
			return err
		}
		r, err := c.call(http.MethodPost, "/sessions", nil, b)
		if err != nil {
			return err
		}
		return show(c, r, func(s sessionView) error {
			_, err := fmt.Fprintln(c.out, s.ID)
			return err
		})
	}
}

func sessionList(fs *flag.FlagSet) action {
	node := fs.String("node", "", "only the sessions of `NODE`")
	return func(c *client, _ []string) error {
		q := url.Values{}
		if *node != "" {
			q.Set("node", *node)
		}
		return showList(c, "/sessions", q, 0, []string{"ID", "NAME", "NODE", "TTL", "BEHAVIOR", "LOCK_DELAY", "RENEW_INDEX"},
			func(s sessionView) []string {
				return []string{s.ID, s.Name, s.Node, s.TTL, s.Behavior, s.LockDelay, strconv.FormatUint(s.RenewIndex, 10)}
			})
	}
}

func sessionGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("sessions", args[0]), nil)
		if err != nil {
			return err
		}
		return showFields(c, r)
	}
}

func sessionRenew(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.call(http.MethodPut, pathOf("sessions", args[0], "renew"), nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(s sessionView) error {
			_, err := fmt.Fprintf(c.out, "renewed %s (renew_index %d)\n", s.ID, s.RenewIndex)
			return err
		})
	}
}

func sessionDestroy(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.call(http.MethodDelete, pathOf("sessions", args[0]), nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(e struct {
			Invalidated bool     `json:"invalidated"`
			Released    []string `json:"released"`
			Deleted     []string `json:"deleted"`
		}) error {
			if !e.Invalidated {
				_, err := fmt.Fprintf(c.out, "session %s did not exist (already ended)\n", args[0])
				return err
			}
			_, err := fmt.Fprintf(c.out, "destroyed %s (released %d keys, deleted %d)\n", args[0], len(e.Released), len(e.Deleted))
			return err
		})
	}
}

// showFields writes an object answer as label: value lines (the JSON in
// json mode).
func showFields(c *client, r *reply) error {
	if c.json {
		return printJSON(c.out, r.body)
	}
	fields, err := objectFields(r.body)
	if err != nil {
		return err
	}
	return printFields(c.out, fields)
}

func txnRun(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		body, err := c.readJSONFile(args[0])
		if err != nil {
			return err
		}
		// A bare array of ops is accepted too.
		var probe []json.RawMessage
		if json.Unmarshal(body, &probe) == nil {
			body, _ = encodeJSON(map[string]json.RawMessage{"ops": body})
		}
		r, err := c.call(http.MethodPost, "/txn", nil, json.RawMessage(body))
		var ae *apiError
		if errors.As(err, &ae) && ae.code == "txn_conflict" {
			// The message names the op; the answer's errors say it again.
			return fmt.Errorf("transaction not applied, nothing changed: %s", ae.message)
		}
		if err != nil {
			return err
		}
		return show(c, r, func(a struct {
			Results []struct {
				Op      string       `json:"op"`
				Key     string       `json:"key"`
				Entry   *configEntry `json:"entry"`
				Deleted *int         `json:"deleted"`
			} `json:"results"`
			Index uint64 `json:"index"`
		}) error {
			rows := make([][]string, 0, len(a.Results))
			for i, res := range a.Results {
				detail := ""
				switch {
				case res.Entry != nil:
					detail = truncate(compactJSON(res.Entry.Value), 60)
				case res.Deleted != nil:
					detail = fmt.Sprintf("deleted %d", *res.Deleted)
				}
				rows = append(rows, []string{strconv.Itoa(i), res.Op, res.Key, detail})
			}
			if err := printTable(c.out, []string{"#", "OP", "KEY", "RESULT"}, rows); err != nil {
				return err
			}
			_, err := fmt.Fprintf(c.out, "applied at index %d\n", a.Index)
			return err
		})
	}
}
