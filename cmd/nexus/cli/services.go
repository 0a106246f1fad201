package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// instance is the part of the API's instance object the tables show.
type instance struct {
	ID          string   `json:"id"`
	Service     string   `json:"service"`
	Address     string   `json:"address"`
	Port        int      `json:"port"`
	Tags        []string `json:"tags"`
	Node        string   `json:"node"`
	Status      string   `json:"status"`
	ModifyIndex uint64   `json:"modify_index"`
}

func instanceRow(in instance) []string {
	return []string{in.ID, in.Address, strconv.Itoa(in.Port), in.Node, in.Status, join(in.Tags)}
}

func instanceHeader() []string {
	return []string{"ID", "ADDRESS", "PORT", "NODE", "STATUS", "TAGS"}
}

func servicesList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		type service struct {
			Name      string            `json:"name"`
			Type      string            `json:"type"`
			Tags      []string          `json:"tags"`
			Instances []json.RawMessage `json:"instances"`
		}
		return showList(c, "/services", nil, 0, []string{"NAME", "TYPE", "INSTANCES", "TAGS"},
			func(s service) []string {
				return []string{s.Name, s.Type, strconv.Itoa(len(s.Instances)), join(s.Tags)}
			})
	}
}

func servicesGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("services", args[0]), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(s struct {
			Instances []instance `json:"instances"`
		}) error {
			rows := make([][]string, 0, len(s.Instances))
			for _, in := range s.Instances {
				rows = append(rows, instanceRow(in))
			}
			return printTable(c.out, instanceHeader(), rows)
		})
	}
}

func servicesHealth(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("services", args[0], "health"), nil)
		if err != nil {
			return err
		}
		type health struct {
			Service   string `json:"service"`
			Status    string `json:"status"`
			Passing   int    `json:"passing"`
			Warning   int    `json:"warning"`
			Critical  int    `json:"critical"`
			Instances []struct {
				ID     string `json:"id"`
				Node   string `json:"node"`
				Status string `json:"status"`
				Output string `json:"output"`
			} `json:"instances"`
		}
		return show(c, r, func(h health) error {
			fmt.Fprintf(c.out, "%s: %s (passing %d, warning %d, critical %d)\n",
				h.Service, h.Status, h.Passing, h.Warning, h.Critical)
			rows := make([][]string, 0, len(h.Instances))
			for _, in := range h.Instances {
				rows = append(rows, []string{in.ID, in.Node, in.Status, truncate(in.Output, 60)})
			}
			return printTable(c.out, []string{"ID", "NODE", "STATUS", "OUTPUT"}, rows)
		})
	}
}

// registration is the body of POST /services/register built from flags.
type registration struct {
	Name                    string            `json:"name"`
	Type                    string            `json:"type"`
	Address                 string            `json:"address,omitempty"`
	Port                    int               `json:"port,omitempty"`
	ID                      string            `json:"id,omitempty"`
	Tags                    []string          `json:"tags,omitempty"`
	Metadata                map[string]string `json:"metadata,omitempty"`
	DependsOn               []string          `json:"depends_on,omitempty"`
	Check                   *healthCheck      `json:"check,omitempty"`
	DeregisterCriticalAfter string            `json:"deregister_critical_after,omitempty"`
}

type healthCheck struct {
	TTL      string `json:"ttl,omitempty"`
	HTTP     string `json:"http,omitempty"`
	TCP      string `json:"tcp,omitempty"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
}

func servicesRegister(fs *flag.FlagSet) action {
	var reg registration
	var chk healthCheck
	meta := keyValues{}
	file := fs.String("file", "", "JSON registration `FILE` (- = stdin) instead of the flags below")
	fs.StringVar(&reg.Name, "name", "", "service `NAME` (required)")
	fs.StringVar(&reg.Type, "type", "", "service `TYPE` (required)")
	fs.StringVar(&reg.Address, "address", "", "instance `ADDRESS`")
	fs.IntVar(&reg.Port, "port", 0, "instance `PORT`")
	fs.StringVar(&reg.ID, "id", "", "instance `ID` (default NAME-ADDRESS-PORT)")
	fs.Var((*stringList)(&reg.Tags), "tag", "`TAG` (repeatable)")
	fs.Var(meta, "meta", "metadata `KEY=VALUE` (repeatable)")
	fs.Var((*stringList)(&reg.DependsOn), "depends-on", "`SERVICE` this one depends on (repeatable)")
	fs.StringVar(&chk.TTL, "check-ttl", "", "TTL check: heartbeat at least every `DUR`")
	fs.StringVar(&chk.HTTP, "check-http", "", "HTTP check `URL`")
	fs.StringVar(&chk.TCP, "check-tcp", "", "TCP check `HOST:PORT`")
	fs.StringVar(&chk.Interval, "check-interval", "", "HTTP/TCP check interval `DUR`")
	fs.StringVar(&chk.Timeout, "check-timeout", "", "HTTP/TCP check timeout `DUR`")
	fs.StringVar(&reg.DeregisterCriticalAfter, "deregister-critical-after", "", "remove the instance after `DUR` critical")
	own := definedFlags(fs)
	return func(c *client, _ []string) error {
		var body any
		if *file != "" {
			if name := setExcept(fs, own, "file"); name != "" {
				return usagef("--file excludes --%s", name)
			}
			b, err := c.readJSONFile(*file)
			if err != nil {
				return err
			}
			body = b
		} else {
			if reg.Name == "" || reg.Type == "" {
				return usagef("--name and --type are required (or --file)")
			}
			kinds := 0
			for _, v := range []string{chk.TTL, chk.HTTP, chk.TCP} {
				if v != "" {
					kinds++
				}
			}
			switch {
			case kinds > 1:
				return usagef("give one of --check-ttl, --check-http, --check-tcp")
			case chk.TTL != "" && (chk.Interval != "" || chk.Timeout != ""):
				return usagef("--check-interval and --check-timeout apply to --check-http and --check-tcp")
			case kinds == 0 && (chk.Interval != "" || chk.Timeout != ""):
				return usagef("--check-interval and --check-timeout need --check-http or --check-tcp")
			}
			for _, d := range [][2]string{
				{"check-ttl", chk.TTL}, {"check-interval", chk.Interval}, {"check-timeout", chk.Timeout},
				{"deregister-critical-after", reg.DeregisterCriticalAfter},
			} {
				if err := checkDuration(d[0], d[1]); err != nil {
					return err
				}
			}
			if kinds == 1 {
				reg.Check = &chk
			}
			if len(meta) > 0 {
				reg.Metadata = meta
			}
			body = reg
		}
		r, err := c.call(http.MethodPost, "/services/register", nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(in instance) error {
			verb := "registered"
			if r.status == http.StatusOK {
				verb = "updated"
			}
			_, err := fmt.Fprintf(c.out, "%s %s/%s (modify_index %d)\n", verb, in.Service, in.ID, in.ModifyIndex)
			return err
		})
	}
}

func servicesDeregister(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		if len(args) == 2 {
			r, err := c.call(http.MethodDelete, pathOf("services", args[0], "instances", args[1]), nil, nil)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(c.out, r.body)
			}
			_, err = fmt.Fprintf(c.out, "deregistered %s/%s\n", args[0], args[1])
			return err
		}
		r, err := c.call(http.MethodDelete, pathOf("services", args[0]), nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(v struct {
			Deregistered int `json:"deregistered"`
		}) error {
			_, err := fmt.Fprintf(c.out, "deregistered %s (%d instances)\n", args[0], v.Deregistered)
			return err
		})
	}
}

func servicesHeartbeat(fs *flag.FlagSet) action {
	status := fs.String("status", "", "report `STATUS`: passing, warning or critical (default passing)")
	output := fs.String("output", "", "check `OUTPUT` to record")
	return func(c *client, args []string) error {
		var body any
		if *status != "" || *output != "" {
			body = map[string]string{"status": *status, "output": *output}
		}
		r, err := c.call(http.MethodPut, pathOf("services", args[0], "instances", args[1], "heartbeat"), nil, body)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		_, err = fmt.Fprintf(c.out, "heartbeat sent for %s/%s\n", args[0], args[1])
		return err
	}
}

func discover(fs *flag.FlagSet) action {
	tag := fs.String("tag", "", "only instances with this `TAG`")
	service := fs.String("service", "", "only instances of this `SERVICE`")
	all := fs.Bool("all", false, "include instances that are not passing")
	return func(c *client, args []string) error {
		q := url.Values{}
		if *tag != "" {
			q.Set("tag", *tag)
		}
		if *service != "" {
			q.Set("service", *service)
		}
		if *all {
			q.Set("all", "true")
		}
		header := append([]string{"SERVICE"}, instanceHeader()...)
		return showList(c, pathOf("discover", args[0]), q, 0, header, func(in instance) []string {
			return append([]string{in.Service}, instanceRow(in)...)
		})
	}
}
