package cli

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// routeSpec is a gateway route: the body of POST /gateway/routes built from
// flags, and the part of the answer the tables show. Pointers are fields
// sent only when their flag is given.
type routeSpec struct {
	ID           string   `json:"id,omitempty"`
	Hosts        []string `json:"hosts,omitempty"`
	Paths        []string `json:"paths,omitempty"`
	Match        string   `json:"match,omitempty"`
	Methods      []string `json:"methods,omitempty"`
	Service      string   `json:"service"`
	StripPath    *bool    `json:"strip_path,omitempty"`
	Priority     *int     `json:"priority,omitempty"`
	LoadBalancer string   `json:"load_balancer,omitempty"`
	HashOn       string   `json:"hash_on,omitempty"`
	Timeout      string   `json:"timeout,omitempty"`
	Retries      *int     `json:"retries,omitempty"`
}

func routesList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		return showList(c, "/gateway/routes", nil, 0,
			[]string{"ID", "SERVICE", "HOSTS", "PATHS", "MATCH", "METHODS", "PRIORITY"},
			func(r routeSpec) []string {
				prio := "0"
				if r.Priority != nil {
					prio = strconv.Itoa(*r.Priority)
				}
				return []string{r.ID, r.Service, join(r.Hosts), join(r.Paths), r.Match, join(r.Methods), prio}
			})
	}
}

func routesGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("gateway", "routes", args[0]), nil)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		fields, err := objectFields(r.body)
		if err != nil {
			return err
		}
		return printFields(c.out, fields)
	}
}

func routesAdd(fs *flag.FlagSet) action {
	var rt routeSpec
	var stripPath bool
	var priority, retries int
	file := fs.String("file", "", "JSON route `FILE` (- = stdin) instead of the flags below")
	fs.StringVar(&rt.ID, "id", "", "route `ID`")
	fs.Var((*stringList)(&rt.Hosts), "host", "`HOST` to match (repeatable; none = any host)")
	fs.Var((*stringList)(&rt.Paths), "path", "`PATH` to match (repeatable)")
	fs.StringVar(&rt.Match, "match", "", "path `MATCH`: prefix (default) or exact")
	fs.Var((*stringList)(&rt.Methods), "method", "HTTP `METHOD` to match (repeatable; none = any method)")
	fs.StringVar(&rt.Service, "service", "", "upstream `SERVICE` (required)")
	fs.BoolVar(&stripPath, "strip-path", false, "remove the matched prefix before proxying")
	fs.IntVar(&priority, "priority", 0, "`N`: higher wins among otherwise equal routes")
	fs.StringVar(&rt.LoadBalancer, "load-balancer", "", "`LB`: round_robin (default), least_conn, random or consistent_hash")
	fs.StringVar(&rt.HashOn, "hash-on", "", "consistent_hash `KEY`, e.g. header:X-User")
	fs.StringVar(&rt.Timeout, "timeout", "", "upstream timeout `DUR` (default 30s; the HTTP timeout is --http-timeout here)")
	fs.IntVar(&retries, "retries", 0, "`N` retries (default 1)")
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
			if rt.Service == "" {
				return usagef("--service is required (or --file)")
			}
			if err := checkDuration("timeout", rt.Timeout); err != nil {
				return err
			}
			fs.Visit(func(f *flag.Flag) {
				switch f.Name {
				case "strip-path":
					rt.StripPath = &stripPath
				case "priority":
					rt.Priority = &priority
				case "retries":
					rt.Retries = &retries
				}
			})
			for i, m := range rt.Methods {
				rt.Methods[i] = strings.ToUpper(m)
			}
			body = rt
		}
		r, err := c.call(http.MethodPost, "/gateway/routes", nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(rt routeSpec) error {
			_, err := fmt.Fprintf(c.out, "added route %s (service %s)\n", rt.ID, rt.Service)
			return err
		})
	}
}

func routesDelete(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.call(http.MethodDelete, pathOf("gateway", "routes", args[0]), nil, nil)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(c.out, r.body)
		}
		_, err = fmt.Fprintf(c.out, "deleted route %s\n", args[0])
		return err
	}
}
