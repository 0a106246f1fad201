package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The ACL subcommands: thin clients of /acl/* (docs/api.md "Access
// control"). An update changes only what its flags name: PUT of a policy or
// a role replaces the whole object, so those read it first; PUT of a token
// changes only the fields sent.

// aclResources and aclAccesses are the values a policy rule accepts.
var (
	aclResources = []string{"service", "config", "route", "cluster", "audit", "acl"}
	aclAccesses  = []string{"read", "write", "deny"}
)

// aclRule is one rule of a policy.
type aclRule struct {
	Resource string `json:"resource"`
	Prefix   string `json:"prefix"`
	Access   string `json:"access"`
}

// String is the rule as --rule takes it: RESOURCE:PREFIX:ACCESS.
func (r aclRule) String() string {
	return r.Resource + ":" + r.Prefix + ":" + r.Access
}

// aclPolicy is the API's policy object.
type aclPolicy struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Rules       []aclRule `json:"rules"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// aclRole is the API's role object.
type aclRole struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Policies    []string `json:"policies"`
	CreateIndex uint64   `json:"create_index"`
	ModifyIndex uint64   `json:"modify_index"`
}

// aclToken is the API's token object; SecretID is only in the answer to a
// create.
type aclToken struct {
	AccessorID     string   `json:"accessor_id"`
	SecretID       string   `json:"secret_id"`
	Description    string   `json:"description"`
	Policies       []string `json:"policies"`
	Roles          []string `json:"roles"`
	CreateTime     string   `json:"create_time"`
	ExpirationTime string   `json:"expiration_time"`
	CreateIndex    uint64   `json:"create_index"`
	ModifyIndex    uint64   `json:"modify_index"`
}

// policyBody is the body of POST and PUT /acl/policies; PUT has no name.
type policyBody struct {
	Name        string    `json:"name,omitempty"`
	Description string    `json:"description"`
	Rules       []aclRule `json:"rules"`
}

// roleBody is the body of POST and PUT /acl/roles; PUT has no name.
type roleBody struct {
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description"`
	Policies    []string `json:"policies"`
}

// ruleList is the repeatable --rule flag; a bad rule fails the flag parse,
// so it is a usage error before any request.
type ruleList []aclRule

func (l *ruleList) String() string {
	parts := make([]string, len(*l))
	for i, r := range *l {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

func (l *ruleList) Set(v string) error {
	r, err := parseRule(v)
	if err != nil {
		return err
	}
	*l = append(*l, r)
	return nil
}

// parseRule parses RESOURCE:PREFIX:ACCESS. The prefix is everything between
// the first and the last colon, so it may be empty (cluster::read) or hold
// colons itself.
func parseRule(v string) (aclRule, error) {
	first, last := strings.Index(v, ":"), strings.LastIndex(v, ":")
	if first < 0 || first == last {
		return aclRule{}, fmt.Errorf("want RESOURCE:PREFIX:ACCESS (PREFIX may be empty, e.g. cluster::read), got %q", v)
	}
	r := aclRule{Resource: v[:first], Prefix: v[first+1 : last], Access: v[last+1:]}
	if !oneOf(r.Resource, aclResources) {
		return aclRule{}, fmt.Errorf("unknown resource %q (want %s)", r.Resource, orList(aclResources))
	}
	if !oneOf(r.Access, aclAccesses) {
		return aclRule{}, fmt.Errorf("unknown access %q (want %s)", r.Access, orList(aclAccesses))
	}
	return r, nil
}

func oneOf(s string, l []string) bool {
	for _, x := range l {
		if s == x {
			return true
		}
	}
	return false
}

// orList renders ["a","b","c"] as "a, b or c".
func orList(l []string) string {
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// nameList is a repeatable name flag (--policy, --role) that remembers
// whether it was given: an update replaces the list only then, and an empty
// value (--role "") gives an empty list.
type nameList struct {
	set   bool
	names []string
}

func (l *nameList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.names, ",")
}

func (l *nameList) Set(v string) error {
	l.set = true
	if v != "" {
		l.names = append(l.names, v)
	}
	return nil
}

// list returns the names, never nil, so that the API gets [] and not null.
func (l *nameList) list() []string {
	if l.names == nil {
		return []string{}
	}
	return l.names
}

// given reports whether the flag called name was on the command line.
func given(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// secretNote warns on stderr, beside a table that shows a secret, that the
// API will not show it again.
func secretNote(fs *flag.FlagSet) {
	fmt.Fprintln(fs.Output(), "Note: the Secret ID is shown only once; store it now.")
}

func aclBootstrap(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.call(http.MethodPost, "/acl/bootstrap", nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(t struct {
			AccessorID string   `json:"accessor_id"`
			SecretID   string   `json:"secret_id"`
			Policies   []string `json:"policies"`
		}) error {
			if err := printFields(c.out, [][2]string{
				{"Accessor ID", t.AccessorID},
				{"Secret ID", t.SecretID},
				{"Policies", strings.Join(t.Policies, ", ")},
			}); err != nil {
				return err
			}
			secretNote(fs)
			return nil
		})
	}
}

func aclLogin(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		if c.token == "" {
			return usagef("--token (or $NEXUS_TOKEN) is required: login exchanges it for a JWT")
		}
		r, err := c.call(http.MethodPost, "/acl/login", nil, nil)
		if err != nil {
			return err
		}
		return show(c, r, func(l struct {
			Token      string `json:"token"`
			ExpiresAt  string `json:"expires_at"`
			AccessorID string `json:"accessor_id"`
		}) error {
			return printFields(c.out, [][2]string{
				{"Token", l.Token},
				{"Expires at", l.ExpiresAt},
				{"Accessor ID", l.AccessorID},
			})
		})
	}
}

// policyFlags are the flags of policy create and update.
type policyFlags struct {
	fs          *flag.FlagSet
	name        *string // create only
	description *string
	rules       ruleList
	rulesFile   *string
}

func definePolicyFlags(fs *flag.FlagSet, create bool) *policyFlags {
	p := &policyFlags{fs: fs}
	if create {
		p.name = fs.String("name", "", "policy `NAME` (required)")
	}
	p.description = fs.String("description", "", "`TEXT` describing the policy")
	fs.Var(&p.rules, "rule", "rule `RESOURCE:PREFIX:ACCESS` (repeatable): RESOURCE is "+orList(aclResources)+
		", ACCESS is "+orList(aclAccesses)+"; PREFIX may be empty, e.g. cluster::read")
	p.rulesFile = fs.String("rules-file", "", "JSON `FILE` (- = stdin): the rules array, or a whole policy object")
	return p
}

// fromFile reads --rules-file: a JSON array of rules, or a whole policy
// object (as policy get --format json prints it) whose name, description
// and rules are taken; whole reports the latter.
func (p *policyFlags) fromFile(c *client) (body policyBody, whole bool, err error) {
	b, err := c.readJSONFile(*p.rulesFile)
	if err != nil {
		return body, false, err
	}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[':
		err = json.Unmarshal(b, &body.Rules)
	case len(b) > 0 && b[0] == '{':
		whole = true
		err = json.Unmarshal(b, &body)
	default:
		err = fmt.Errorf("want a JSON array of rules or a policy object")
	}
	if err != nil {
		return body, false, fmt.Errorf("--rules-file %s: %v", *p.rulesFile, err)
	}
	return body, whole, nil
}

// read returns what the flags give: the body, and whether they set the
// description and the rules.
func (p *policyFlags) read(c *client) (body policyBody, descSet, rulesSet bool, err error) {
	if len(p.rules) > 0 && *p.rulesFile != "" {
		return body, false, false, usagef("--rule and --rules-file exclude each other")
	}
	if *p.rulesFile != "" {
		if body, descSet, err = p.fromFile(c); err != nil {
			return body, false, false, err
		}
		rulesSet = true // and a whole policy sets the description too
	}
	if len(p.rules) > 0 {
		body.Rules = p.rules
		rulesSet = true
	}
	if given(p.fs, "description") {
		body.Description = *p.description
		descSet = true
	}
	if p.name != nil && *p.name != "" {
		body.Name = *p.name
	}
	if body.Rules == nil && rulesSet {
		body.Rules = []aclRule{}
	}
	return body, descSet, rulesSet, nil
}

func aclPolicyCreate(fs *flag.FlagSet) action {
	p := definePolicyFlags(fs, true)
	return func(c *client, _ []string) error {
		body, _, rulesSet, err := p.read(c)
		switch {
		case err != nil:
			return err
		case body.Name == "":
			return usagef("--name is required")
		case !rulesSet:
			return usagef("--rule or --rules-file is required")
		}
		r, err := c.call(http.MethodPost, "/acl/policies", nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(p aclPolicy) error {
			_, err := fmt.Fprintf(c.out, "created policy %s (modify_index %d)\n", p.Name, p.ModifyIndex)
			return err
		})
	}
}

func aclPolicyUpdate(fs *flag.FlagSet) action {
	p := definePolicyFlags(fs, false)
	return func(c *client, args []string) error {
		name := args[0]
		body, descSet, rulesSet, err := p.read(c)
		switch {
		case err != nil:
			return err
		case body.Name != "" && body.Name != name:
			return usagef("--rules-file holds policy %q, not %q", body.Name, name)
		case !descSet && !rulesSet:
			return usagef("nothing to update: give --description, --rule or --rules-file")
		}
		body.Name = "" // the path names the policy
		path := pathOf("acl", "policies", name)
		if !descSet || !rulesSet {
			cur, err := getAs[aclPolicy](c, path)
			if err != nil {
				return err
			}
			if !descSet {
				body.Description = cur.Description
			}
			if !rulesSet {
				body.Rules = cur.Rules
				if body.Rules == nil {
					body.Rules = []aclRule{}
				}
			}
		}
		r, err := c.call(http.MethodPut, path, nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(p aclPolicy) error {
			_, err := fmt.Fprintf(c.out, "updated policy %s (modify_index %d)\n", name, p.ModifyIndex)
			return err
		})
	}
}

// getAs reads one object for an update to start from.
func getAs[T any](c *client, path string) (T, error) {
	r, err := c.get(path, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	return decodeAs[T](r.body)
}

func aclPolicyList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		return showList(c, "/acl/policies", nil, 0, []string{"NAME", "DESCRIPTION", "RULES"},
			func(p aclPolicy) []string {
				rules := make([]string, len(p.Rules))
				for i, r := range p.Rules {
					rules[i] = r.String()
				}
				return []string{p.Name, p.Description, join(rules)}
			})
	}
}

func aclPolicyGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("acl", "policies", args[0]), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(p aclPolicy) error {
			rules := make([]string, len(p.Rules))
			for i, r := range p.Rules {
				rules[i] = r.String()
			}
			return printFieldLines(c.out, []fieldLines{
				{"Name", []string{p.Name}},
				{"Description", []string{p.Description}},
				{"Rules", rules},
				{"Create index", []string{strconv.FormatUint(p.CreateIndex, 10)}},
				{"Modify index", []string{strconv.FormatUint(p.ModifyIndex, 10)}},
			})
		})
	}
}

// fieldLines is a label with one value a line.
type fieldLines struct {
	label  string
	values []string
}

// printFieldLines is printFields for values of several lines: the label on
// the first, the others aligned under it.
func printFieldLines(w io.Writer, fields []fieldLines) error {
	var lines [][]string
	for _, f := range fields {
		if len(f.values) == 0 {
			lines = append(lines, []string{f.label + ":", ""})
		}
		for i, v := range f.values {
			label := ""
			if i == 0 {
				label = f.label + ":"
			}
			lines = append(lines, []string{label, v})
		}
	}
	return printAligned(w, 1, lines)
}

// aclDelete deletes the object at /acl/{plural}/{args[0]}.
func aclDelete(kind, plural string) func(fs *flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		return func(c *client, args []string) error {
			r, err := c.call(http.MethodDelete, pathOf("acl", plural, args[0]), nil, nil)
			if err != nil {
				return err
			}
			if c.json {
				return printJSON(c.out, r.body)
			}
			_, err = fmt.Fprintf(c.out, "deleted %s %s\n", kind, args[0])
			return err
		}
	}
}

func aclRoleCreate(fs *flag.FlagSet) action {
	name := fs.String("name", "", "role `NAME` (required)")
	description := fs.String("description", "", "`TEXT` describing the role")
	var policies nameList
	fs.Var(&policies, "policy", "`POLICY` the role grants (repeatable, at least one)")
	return func(c *client, _ []string) error {
		switch {
		case *name == "":
			return usagef("--name is required")
		case len(policies.names) == 0:
			return usagef("--policy is required (repeatable)")
		}
		body := roleBody{Name: *name, Description: *description, Policies: policies.list()}
		r, err := c.call(http.MethodPost, "/acl/roles", nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(ro aclRole) error {
			_, err := fmt.Fprintf(c.out, "created role %s (modify_index %d)\n", ro.Name, ro.ModifyIndex)
			return err
		})
	}
}

func aclRoleUpdate(fs *flag.FlagSet) action {
	description := fs.String("description", "", "new `TEXT` describing the role")
	var policies nameList
	fs.Var(&policies, "policy", "`POLICY` the role grants (repeatable; replaces the role's list)")
	return func(c *client, args []string) error {
		descSet := given(fs, "description")
		if !descSet && !policies.set {
			return usagef("nothing to update: give --description or --policy")
		}
		body := roleBody{Description: *description, Policies: policies.list()}
		path := pathOf("acl", "roles", args[0])
		if !descSet || !policies.set {
			cur, err := getAs[aclRole](c, path)
			if err != nil {
				return err
			}
			if !descSet {
				body.Description = cur.Description
			}
			if !policies.set {
				body.Policies = (&nameList{names: cur.Policies}).list()
			}
		}
		r, err := c.call(http.MethodPut, path, nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(ro aclRole) error {
			_, err := fmt.Fprintf(c.out, "updated role %s (modify_index %d)\n", args[0], ro.ModifyIndex)
			return err
		})
	}
}

func aclRoleList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		return showList(c, "/acl/roles", nil, 0, []string{"NAME", "DESCRIPTION", "POLICIES"},
			func(ro aclRole) []string {
				return []string{ro.Name, ro.Description, join(ro.Policies)}
			})
	}
}

func aclRoleGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("acl", "roles", args[0]), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(ro aclRole) error {
			return printFields(c.out, [][2]string{
				{"Name", ro.Name},
				{"Description", ro.Description},
				{"Policies", strings.Join(ro.Policies, ", ")},
				{"Create index", strconv.FormatUint(ro.CreateIndex, 10)},
				{"Modify index", strconv.FormatUint(ro.ModifyIndex, 10)},
			})
		})
	}
}

// tokenFields renders a token; the secret only when the answer has it.
func tokenFields(t aclToken) [][2]string {
	fields := [][2]string{{"Accessor ID", t.AccessorID}}
	if t.SecretID != "" {
		fields = append(fields, [2]string{"Secret ID", t.SecretID})
	}
	return append(fields,
		[2]string{"Description", t.Description},
		[2]string{"Policies", strings.Join(t.Policies, ", ")},
		[2]string{"Roles", strings.Join(t.Roles, ", ")},
		[2]string{"Create time", t.CreateTime},
		[2]string{"Expiration time", expiration(t)},
		[2]string{"Create index", strconv.FormatUint(t.CreateIndex, 10)},
		[2]string{"Modify index", strconv.FormatUint(t.ModifyIndex, 10)},
	)
}

func expiration(t aclToken) string {
	if t.ExpirationTime == "" {
		return "never"
	}
	return t.ExpirationTime
}

func aclTokenCreate(fs *flag.FlagSet) action {
	description := fs.String("description", "", "`TEXT` describing the token")
	var policies, roles nameList
	fs.Var(&policies, "policy", "`POLICY` the token grants (repeatable)")
	fs.Var(&roles, "role", "`ROLE` the token grants (repeatable)")
	expiresIn := fs.String("expires-in", "", "the token expires after `DUR`, e.g. 24h (default never)")
	return func(c *client, _ []string) error {
		if *expiresIn != "" {
			if d, err := time.ParseDuration(*expiresIn); err != nil || d <= 0 {
				return usagef("--expires-in: %q is not a positive duration (e.g. 24h)", *expiresIn)
			}
		}
		body := struct {
			Description string   `json:"description,omitempty"`
			Policies    []string `json:"policies,omitempty"`
			Roles       []string `json:"roles,omitempty"`
			ExpiresIn   string   `json:"expires_in,omitempty"`
		}{*description, policies.names, roles.names, *expiresIn}
		r, err := c.call(http.MethodPost, "/acl/tokens", nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(t aclToken) error {
			if err := printFields(c.out, tokenFields(t)); err != nil {
				return err
			}
			secretNote(fs)
			return nil
		})
	}
}

func aclTokenUpdate(fs *flag.FlagSet) action {
	description := fs.String("description", "", "new `TEXT` describing the token")
	var policies, roles nameList
	fs.Var(&policies, "policy", "`POLICY` the token grants (repeatable; replaces the token's policies, --policy '' clears them)")
	fs.Var(&roles, "role", "`ROLE` the token grants (repeatable; replaces the token's roles, --role '' clears them)")
	return func(c *client, args []string) error {
		// The API keeps each field that is not sent.
		var body struct {
			Description *string   `json:"description,omitempty"`
			Policies    *[]string `json:"policies,omitempty"`
			Roles       *[]string `json:"roles,omitempty"`
		}
		if given(fs, "description") {
			body.Description = description
		}
		if policies.set {
			l := policies.list()
			body.Policies = &l
		}
		if roles.set {
			l := roles.list()
			body.Roles = &l
		}
		if body.Description == nil && body.Policies == nil && body.Roles == nil {
			return usagef("nothing to update: give --description, --policy or --role")
		}
		r, err := c.call(http.MethodPut, pathOf("acl", "tokens", args[0]), nil, body)
		if err != nil {
			return err
		}
		return show(c, r, func(t aclToken) error {
			_, err := fmt.Fprintf(c.out, "updated token %s (modify_index %d)\n", args[0], t.ModifyIndex)
			return err
		})
	}
}

func aclTokenList(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		return showList(c, "/acl/tokens", nil, 0,
			[]string{"ACCESSOR_ID", "POLICIES", "ROLES", "EXPIRES", "DESCRIPTION"},
			func(t aclToken) []string {
				return []string{t.AccessorID, join(t.Policies), join(t.Roles), expiration(t), t.Description}
			})
	}
}

func aclTokenGet(fs *flag.FlagSet) action {
	return func(c *client, args []string) error {
		r, err := c.get(pathOf("acl", "tokens", args[0]), nil)
		if err != nil {
			return err
		}
		return show(c, r, func(t aclToken) error {
			return printFields(c.out, tokenFields(t))
		})
	}
}

// aclTokenSelf shows the caller's token; a JWT caller has no token object,
// so its claims are shown as the API sent them.
func aclTokenSelf(fs *flag.FlagSet) action {
	return func(c *client, _ []string) error {
		r, err := c.get("/acl/token/self", nil)
		if err != nil {
			return err
		}
		return show(c, r, func(t aclToken) error {
			if t.AccessorID != "" {
				return printFields(c.out, tokenFields(t))
			}
			fields, err := objectFields(r.body)
			if err != nil {
				return err
			}
			return printFields(c.out, fields)
		})
	}
}
