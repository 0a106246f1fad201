package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// printJSON writes a JSON document indented by two spaces, keys in the
// order the API sent them. A body that is not JSON is written as it is.
func printJSON(w io.Writer, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// printItems writes list items as one indented JSON array, each item as the
// API sent it.
func printItems(w io.Writer, items []json.RawMessage) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteByte(']')
	return printJSON(w, buf.Bytes())
}

// printTable writes aligned columns under a header.
func printTable(w io.Writer, header []string, rows [][]string) error {
	lines := make([][]string, 0, len(rows)+1)
	return printAligned(w, 2, append(append(lines, header), rows...))
}

// printFields writes "label: value" lines, values aligned.
func printFields(w io.Writer, fields [][2]string) error {
	lines := make([][]string, 0, len(fields))
	for _, f := range fields {
		lines = append(lines, []string{f[0] + ":", f[1]})
	}
	return printAligned(w, 1, lines)
}

// printAligned writes cells in columns, at least padding blanks apart,
// without trailing blanks.
func printAligned(w io.Writer, padding int, lines [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, padding, ' ', 0)
	for _, cells := range lines {
		clean := make([]string, len(cells))
		for i, cell := range cells {
			clean[i] = cellText(cell)
		}
		fmt.Fprintln(tw, strings.Join(clean, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			out.WriteString(strings.TrimRight(line, " \n") + "\n")
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// objectFields lists the top-level members of a JSON object in the order
// they were sent: strings unquoted, other values as compact JSON.
func objectFields(body []byte) ([][2]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("unexpected answer: not a JSON object")
	}
	var fields [][2]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fields = append(fields, [2]string{key, jsonText(v)})
	}
	return fields, nil
}

// jsonText renders a JSON value for a table cell: a string without quotes,
// anything else as compact JSON.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return compactJSON(v)
}

// compactJSON renders a JSON value on one line.
func compactJSON(v json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}

// cellText keeps a value on one line so it cannot break the table.
func cellText(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// truncate shortens s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// join renders a string list for a table cell.
func join(l []string) string {
	return strings.Join(l, ",")
}

// decodeAs decodes an API answer into the type a table is built from.
func decodeAs[T any](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("unexpected answer from nexus: %v", err)
	}
	return v, nil
}

// show writes one answer: the body in json mode, else what table renders
// from it decoded as T.
func show[T any](c *client, r *reply, table func(T) error) error {
	if c.json {
		return printJSON(c.out, r.body)
	}
	v, err := decodeAs[T](r.body)
	if err != nil {
		return err
	}
	return table(v)
}

// showList reads every page of a list and writes it: one JSON array in json
// mode, else a table with one row per item decoded as T.
func showList[T any](c *client, path string, q url.Values, limit int, header []string, row func(T) []string) error {
	items, err := c.list(path, q, limit)
	if err != nil {
		return err
	}
	if c.json {
		return printItems(c.out, items)
	}
	rows := make([][]string, 0, len(items))
	for _, raw := range items {
		v, err := decodeAs[T](raw)
		if err != nil {
			return err
		}
		rows = append(rows, row(v))
	}
	return printTable(c.out, header, rows)
}
