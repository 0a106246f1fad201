package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// configEntry is the API's config entry.
type configEntry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModifyIndex uint64          `json:"modify_index"`
}

func configGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(configPath(args[0]), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(e configEntry) error {
			return printJSON(c.out, e.Value)
		})
	}
}

// casFlag adds --cas to fs; the returned function reports the query that
// carries it, empty when the flag was not given (cas=0 means create only).
func casFlag(fs *flag.FlagSet) func() url.Values {
	cas := fs.Uint64("cas", 0, "only if the key's modify_index is `N` (0 = only if absent)")
	return func() url.Values {
		q := url.Values{}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "cas" {
				q.Set("cas", strconv.FormatUint(*cas, 10))
			}
		})
		return q
	}
}

// configValue is the JSON sent for a value given on the command line: the
// text itself when it is JSON, else the text as a JSON string.
func configValue(text []byte) json.RawMessage {
	if json.Valid(text) {
		return json.RawMessage(text)
	}
	b, _ := encodeJSON(string(text)) // a string always encodes
	return b
}

func configSet(fs *flag.FlagSet) action {
	file := fs.String("file", "", "read the value from `FILE` (- = stdin)")
	cas := casFlag(fs)
	return func(c *client, args []string) error {
		var text []byte
		switch {
		case *file != "" && len(args) == 2:
			return usagef("give VALUE or --file, not both")
		case *file != "":
			b, err := c.readInput(*file)
			if err != nil {
				return err
			}
			text = b
		case len(args) == 2:
			text = []byte(args[1])
		default:
			return usagef("missing VALUE (or --file)")
		}
		r, err := c.call(http.MethodPut, configPath(args[0]), cas(), configValue(text))
		if err != nil {
			return err
		}
		return show(c, r, func(e configEntry) error {
			_, err := fmt.Fprintf(c.out, "set %s (modify_index %d)\n", e.Key, e.ModifyIndex)
			return err
		})
	}
}

func configDelete(fs *flag.FlagSet) action {
	cas := casFlag(fs)
	return func(c *client, args []string) error {
		r, err := c.call(http.MethodDelete, configPath(args[0]), cas(), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(e configEntry) error {
			_, err := fmt.Fprintf(c.out, "deleted %s (modify_index %d)\n", args[0], e.ModifyIndex)
			return err
		})
	}
}

func configList(fs *flag.FlagSet) action {
	prefix := fs.String("prefix", "", "only keys starting with `P`")
	return func(c *client, _ []string) error {
		q := url.Values{}
		if *prefix != "" {
			q.Set("prefix", *prefix)
		}
		return showList(c, "/config", q, 0, []string{"KEY", "MODIFY_INDEX", "VALUE"}, func(e configEntry) []string {
			return []string{e.Key, strconv.FormatUint(e.ModifyIndex, 10), truncate(compactJSON(e.Value), 60)}
		})
	}
}
