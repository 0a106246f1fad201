// Package cli implements the client subcommands of the nexus binary: every
// command except `nexus agent` is a thin client of the admin REST API
// described in docs/api.md.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Exit codes returned by Run.
const (
	exitOK    = 0
	exitError = 1 // the API answered an error or was unreachable
	exitUsage = 2
)

const defaultHTTPAddr = "127.0.0.1:8500"

// action runs a parsed subcommand with its positional arguments.
type action func(c *client, args []string) error

// command is one client subcommand.
type command struct {
	path    string // words after "nexus", e.g. "services list"
	args    string // positional synopsis, e.g. "NAME [ID]"; bracketed words are optional
	summary string
	// setup defines the subcommand's own flags on fs and returns the action to
	// run once flags and arguments are parsed. A flag defined here hides the
	// global flag of the same name (routes add --timeout is the route's).
	setup func(fs *flag.FlagSet) action
}

// commands lists the client subcommands in the order Usage shows them.
func commands() []command {
	return []command{
		{"services list", "", "list services", servicesList},
		{"services get", "NAME", "show the instances of a service", servicesGet},
		{"services health", "NAME", "show the health of a service", servicesHealth},
		{"services register", "", "register an instance (flags or --file FILE)", servicesRegister},
		{"services deregister", "NAME [ID]", "deregister a service or one instance", servicesDeregister},
		{"services heartbeat", "NAME ID", "refresh the TTL check of an instance", servicesHeartbeat},
		{"discover", "TYPE", "list instances of a service type", discover},
		{"config get", "KEY", "show a config value", configGet},
		{"config set", "KEY [VALUE]", "set a config value (JSON or string; --file FILE)", configSet},
		{"config delete", "KEY", "delete a config key", configDelete},
		{"config list", "", "list config entries", configList},
		{"routes list", "", "list gateway routes", routesList},
		{"routes get", "ID", "show a gateway route", routesGet},
		{"routes add", "", "add a gateway route (flags or --file FILE)", routesAdd},
		{"routes delete", "ID", "delete a gateway route", routesDelete},
		{"members", "", "list cluster members", members},
		{"raft peers", "", "list Raft servers", raftPeers},
		{"raft remove-peer", "NODE", "remove a failed server from Raft", raftRemovePeer},
		{"leader", "", "show the current leader", leader},
		{"status", "", "show the status of the node", status},
		{"leave", "", "make the node leave the cluster for good", leave},
		{"snapshot save", "FILE", "save a snapshot of the cluster state (- = stdout)", snapshotSave},
		{"snapshot restore", "FILE", "restore a snapshot (- = stdin)", snapshotRestore},
		{"snapshot inspect", "FILE", "show index, term, size and object counts of a snapshot file (offline; - = stdin)", snapshotInspect},
		{"audit list", "", "list audit events, newest first", auditList},
		{"acl bootstrap", "", "create the first management token", aclBootstrap},
		{"acl login", "", "exchange the --token for a short-lived JWT", aclLogin},
		{"acl policy create", "", "create an ACL policy (--rule ... or --rules-file FILE)", aclPolicyCreate},
		{"acl policy list", "", "list ACL policies", aclPolicyList},
		{"acl policy get", "NAME", "show an ACL policy", aclPolicyGet},
		{"acl policy update", "NAME", "change an ACL policy's description or rules", aclPolicyUpdate},
		{"acl policy delete", "NAME", "delete an ACL policy", aclDelete("policy", "policies")},
		{"acl role create", "", "create an ACL role from policies", aclRoleCreate},
		{"acl role list", "", "list ACL roles", aclRoleList},
		{"acl role get", "NAME", "show an ACL role", aclRoleGet},
		{"acl role update", "NAME", "change an ACL role's description or policies", aclRoleUpdate},
		{"acl role delete", "NAME", "delete an ACL role", aclDelete("role", "roles")},
		{"acl token create", "", "create an ACL token (its secret is shown only once)", aclTokenCreate},
		{"acl token list", "", "list ACL tokens (without secrets)", aclTokenList},
		{"acl token get", "ID", "show an ACL token by accessor ID", aclTokenGet},
		{"acl token update", "ID", "change an ACL token's description, policies or roles", aclTokenUpdate},
		{"acl token delete", "ID", "delete an ACL token by accessor ID", aclDelete("token", "tokens")},
		{"acl token self", "", "show the token the request is made with", aclTokenSelf},
		{"keyring list", "", "list the gossip encryption keys of the node", keyringList},
		{"keyring install", "KEY", "add a gossip key on every member (base64)", keyringOp("install")},
		{"keyring use", "KEY", "make an installed key the primary on every member", keyringOp("use")},
		{"keyring remove", "KEY", "remove a gossip key from every member", keyringOp("remove")},
		{"session create", "", "create a session (its id is printed)", sessionCreate},
		{"session list", "", "list sessions", sessionList},
		{"session get", "ID", "show a session", sessionGet},
		{"session renew", "ID", "renew a session's TTL", sessionRenew},
		{"session destroy", "ID", "destroy a session, releasing or deleting the keys it holds", sessionDestroy},
		{"lock", "PREFIX CMD [ARG]...", "run CMD while holding PREFIX's lock, one holder cluster-wide (-- ends the flags)", lockRun},
		{"txn", "FILE", "run a transaction of up to 64 ops from a JSON FILE (- = stdin), all or nothing", txnRun},
		{"maint enable", "", "put a node (--node) or a service or instance (--service [--id]) in maintenance", maintEnable},
		{"maint disable", "", "end the maintenance of a node, a service or an instance", maintDisable},
		{"maint list", "", "list what is in maintenance", maintList},
	}
}

// Run runs one client subcommand; args excludes the program name, e.g.
// ["services","list"]. It returns the process exit code: 0 ok, 1 the API
// answered an error or was unreachable, 2 usage error.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	flags, args := leadingGlobals(args)
	cmd, rest, ok := lookup(args)
	if !ok {
		if len(args) > 0 && !isHelp(args[0]) {
			fmt.Fprintf(stderr, "Error: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		}
		Usage(stderr)
		return exitUsage
	}
	return cmd.run(append(flags, rest...), stdin, stdout, stderr, getenv)
}

func isHelp(s string) bool {
	return s == "help" || s == "-h" || s == "-help" || s == "--help"
}

// leadingGlobals splits off the global flags written before the command
// words ("nexus --format json services list"). Such a --timeout is the HTTP
// timeout, so it becomes --http-timeout (routes add has its own --timeout).
func leadingGlobals(args []string) (flags, rest []string) {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" && !isHelp(args[i]) {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if name == "timeout" {
			name = "http-timeout"
		}
		if hasValue {
			flags = append(flags, "--"+name+"="+value)
		} else {
			flags = append(flags, "--"+name)
		}
		i++
		switch name {
		case "http-addr", "token", "format", "http-timeout", "ca-file", "client-cert", "client-key":
			if !hasValue && i < len(args) {
				flags = append(flags, args[i])
				i++
			}
		}
	}
	return flags, args[i:]
}

// lookup finds the command named by the leading words of args.
func lookup(args []string) (command, []string, bool) {
	for _, cmd := range commands() {
		words := strings.Fields(cmd.path)
		if len(args) < len(words) {
			continue
		}
		if strings.Join(args[:len(words)], " ") == cmd.path {
			return cmd, args[len(words):], true
		}
	}
	return command{}, nil, false
}

// Usage writes the command overview (used by main for `nexus help`).
func Usage(w io.Writer) {
	fmt.Fprint(w, "Usage: nexus <command> [arguments] [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  agent\trun a Nexus node (nexus agent -h for its flags)\n")
	fmt.Fprintf(tw, "  migrate status|up\tthe PostgreSQL audit archive schema (--postgres-url)\n")
	fmt.Fprintf(tw, "  recover --data-dir DIR [--voter NODE=HOST:RAFTPORT ...]\toffline quorum-loss recovery (docs/operations.md)\n")
	fmt.Fprintf(tw, "  version\tprint the version\n")
	for _, cmd := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(cmd.path+" "+cmd.args), cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nGlobal flags (every command but agent; flags may follow arguments):\n")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, l := range [][2]string{
		{"--http-addr HOST:PORT", "admin API address, http:// or https:// optional (default $NEXUS_HTTP_ADDR, else " + defaultHTTPAddr + ")"},
		{"--token TOKEN", "ACL token sent as X-Nexus-Token (default $NEXUS_TOKEN)"},
		{"--ca-file FILE", "PEM CA bundle that signed the API's certificate, for https:// addresses (default $NEXUS_CACERT, else the system roots)"},
		{"--client-cert FILE, --client-key FILE", "client certificate and key when the API requires one (default $NEXUS_CLIENT_CERT, $NEXUS_CLIENT_KEY)"},
		{"--format table|json", "output format (default table); json prints the API's answer"},
		{"--consistent", "linearizable reads (served through the leader)"},
		{"--stale", "reads from the local replica without a leader check"},
		{"--timeout DUR", "HTTP request timeout (default 10s); also --http-timeout, which routes add needs"},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", l[0], l[1])
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'nexus <command> -h' for the flags of a command.\n")
}

// exitStatus is an exit code a command chose (nexus lock exits with its
// command's status).
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// globals are the flags every client subcommand accepts.
type globals struct {
	addr       string
	token      string
	format     string
	consistent bool
	stale      bool
	timeout    time.Duration
	tls        tlsFlags
	names      map[string]bool // flag names registered here (not hidden by the command)
}

// register defines the global flags on fs, skipping any name the
// subcommand already defined for itself.
func (g *globals) register(fs *flag.FlagSet, getenv func(string) string) {
	addr := getenv("NEXUS_HTTP_ADDR")
	if addr == "" {
		addr = defaultHTTPAddr
	}
	g.names = map[string]bool{}
	define := func(name string, def func()) {
		if fs.Lookup(name) == nil {
			def()
			g.names[name] = true
		}
	}
	define("http-addr", func() { fs.StringVar(&g.addr, "http-addr", addr, "admin API `HOST:PORT`") })
	define("token", func() { fs.StringVar(&g.token, "token", getenv("NEXUS_TOKEN"), "ACL `token`") })
	define("format", func() { fs.StringVar(&g.format, "format", "table", "output `format`: table or json") })
	g.tls.register(define, fs, getenv)
	define("consistent", func() { fs.BoolVar(&g.consistent, "consistent", false, "linearizable read") })
	define("stale", func() { fs.BoolVar(&g.stale, "stale", false, "stale read") })
	g.timeout = 10 * time.Second
	define("http-timeout", func() { fs.DurationVar(&g.timeout, "http-timeout", g.timeout, "HTTP request `timeout`") })
	define("timeout", func() { fs.DurationVar(&g.timeout, "timeout", g.timeout, "HTTP request `timeout`") })
}

// client builds the API client the globals describe.
func (g *globals) client(stdin io.Reader, stdout io.Writer) (*client, error) {
	var read string
	switch {
	case g.consistent && g.stale:
		return nil, usagef("--consistent and --stale exclude each other")
	case g.consistent:
		read = "consistent"
	case g.stale:
		read = "stale"
	}
	if g.format != "table" && g.format != "json" {
		return nil, usagef("--format must be table or json, not %q", g.format)
	}
	if g.timeout < 0 {
		return nil, usagef("--timeout must not be negative")
	}
	base, err := baseURL(g.addr)
	if err != nil {
		return nil, err
	}
	hc, err := g.tls.httpClient(g.timeout)
	if err != nil {
		return nil, err
	}
	return &client{
		base:    base,
		addr:    g.addr,
		token:   g.token,
		json:    g.format == "json",
		read:    read,
		timeout: g.timeout,
		hc:      hc,
		stdin:   stdin,
		out:     stdout,
	}, nil
}

func (cmd command) run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("nexus "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(stderr)
	act := cmd.setup(fs)
	var g globals
	g.register(fs, getenv)
	fs.Usage = func() { cmd.usage(stderr, fs, g.names) }

	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage // flag has printed the error and the usage
	}
	required, total := argCounts(cmd.args)
	switch {
	case len(pos) < required:
		err = usagef("missing %s", strings.Join(strings.Fields(cmd.args)[len(pos):required], " "))
	case len(pos) > total:
		err = usagef("unexpected argument %q", pos[total])
	}
	var c *client
	if err == nil {
		c, err = g.client(stdin, stdout)
	}
	if err == nil {
		c.errOut = stderr
		err = act(c, pos)
	}
	var ue *usageError
	var es exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &es):
		return int(es)
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "Error: %v\n", err)
		cmd.usage(stderr, fs, g.names)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitError
	}
}

// usage writes the help of one subcommand: its synopsis and its own flags.
func (cmd command) usage(w io.Writer, fs *flag.FlagSet, global map[string]bool) {
	fmt.Fprintf(w, "Usage: nexus %s [flags]\n\n%s\n", strings.TrimSpace(cmd.path+" "+cmd.args), cmd.summary)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if global[f.Name] {
			return
		}
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		name, help := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s%s\n", f.Name, name, help, def)
	})
	timeout := "--timeout"
	if !global["timeout"] {
		timeout = "--http-timeout"
	}
	fmt.Fprintf(w, "\nGlobal flags: --http-addr, --token, --format, --consistent, --stale, %s (see 'nexus help').\n", timeout)
}

// argCounts returns how many positional arguments a synopsis requires and
// allows; a last word ending in "..." allows any number more.
func argCounts(synopsis string) (required, total int) {
	for _, w := range strings.Fields(synopsis) {
		if total < math.MaxInt {
			total++
		}
		if strings.HasSuffix(w, "...") {
			total = math.MaxInt
		}
		if !strings.HasPrefix(w, "[") {
			required++
		}
	}
	return required, total
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments ("config set k v --cas 3"). A "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// definedFlags returns the names of the flags defined on fs so far; at the
// end of a setup function, the subcommand's own flags.
func definedFlags(fs *flag.FlagSet) map[string]bool {
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// setExcept returns the name of a flag among names, other than except, that
// was given on the command line, or "".
func setExcept(fs *flag.FlagSet, names map[string]bool, except string) string {
	found := ""
	fs.Visit(func(f *flag.Flag) {
		if found == "" && names[f.Name] && f.Name != except {
			found = f.Name
		}
	})
	return found
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// keyValues is a repeatable k=v flag.
type keyValues map[string]string

func (m keyValues) String() string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (m keyValues) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	m[k] = val
	return nil
}

// checkDuration returns a usage error when a duration flag's value does not
// parse; the value is sent to the API as written.
func checkDuration(flagName, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.ParseDuration(v); err != nil {
		return usagef("--%s: %q is not a duration (e.g. 10s, 1m)", flagName, v)
	}
	return nil
}
