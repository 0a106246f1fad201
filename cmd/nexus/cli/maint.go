package cli

import (
	"flag"
	"fmt"
	"net/http"
)

// maintView is a maintenance record as the API answers it.
type maintView struct {
	Scope     string `json:"scope"`
	Node      string `json:"node"`
	Service   string `json:"service"`
	ID        string `json:"id"`
	Reason    string `json:"reason"`
	Since     string `json:"since"`
	Actor     string `json:"actor"`
	Instances int    `json:"instances"`
}

// target names what a maintenance record is about, as the CLI prints it.
func (m maintView) target() string {
	switch m.Scope {
	case "node":
		return m.Node
	case "service":
		return m.Service
	}
	return m.Service + "/" + m.ID
}

// maintTarget is the --node | --service [--id] choice of nexus maint.
type maintTarget struct {
	node, service, id string
}

func (t *maintTarget) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.node, "node", "", "the `NODE` (every instance it owns)")
	fs.StringVar(&t.service, "service", "", "the service `NAME` (every instance)")
	fs.StringVar(&t.id, "id", "", "with --service: only the instance `ID`")
}

// path is the API path of the target, or a usage error.
func (t *maintTarget) path() (string, error) {
	switch {
	case t.node != "" && (t.service != "" || t.id != ""):
		return "", usagef("--node excludes --service and --id")
	case t.node != "":
		return pathOf("maintenance", "nodes", t.node), nil
	case t.id != "" && t.service == "":
		return "", usagef("--id needs --service")
	case t.id != "":
		return pathOf("maintenance", "services", t.service, "instances", t.id), nil
	case t.service != "":
		return pathOf("maintenance", "services", t.service), nil
	}
	return "", usagef("name the target: --node NODE, or --service NAME [--id ID]")
}

func maintEnable(fs *flag.FlagSet) action {
	var t maintTarget
	t.flags(fs)
	reason := fs.String("reason", "", "why (shown as the maintenance check's output), up to 256 characters")
	return func(c *client, _ []string) error {
		p, err := t.path()
		if err != nil {
			return err
		}
		r, err := c.call(http.MethodPut, p, nil, map[string]string{"reason": *reason})
		if err != nil {
			return err
		}
		return show(c, r, func(m maintView) error {
			_, err := fmt.Fprintf(c.out, "%s %s in maintenance (%d instances changed)\n", m.Scope, m.target(), m.Instances)
			return err
		})
	}
}

func maintDisable(fs *flag.FlagSet) action {
	var t maintTarget
	t.flags(fs)
	return func(c *client, _ []string) error {
		p, err := t.path()
		if err != nil {
			return err
		}
		r, err := c.call(http.MethodDelete, p, nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(e struct {
			Ended     bool `json:"ended"`
			Instances int  `json:"instances"`
		}) error {
			if !e.Ended {
				_, err := fmt.Fprintln(c.out, "not in maintenance (nothing changed)")
				return err
			}
			_, err := fmt.Fprintf(c.out, "maintenance ended (%d instances changed)\n", e.Instances)
			return err
		})
	}
}

func maintList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		return showList(c, "/maintenance", nil, 0, []string{"SCOPE", "TARGET", "REASON", "SINCE", "ACTOR"},
			func(m maintView) []string {
				return []string{m.Scope, m.target(), m.Reason, m.Since, m.Actor}
			})
	}
}
