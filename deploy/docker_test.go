package deploy

import (
	"debug/elf"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY...
	args string
}

// stage is one FROM and the instructions after it.
type stage struct {
	image, name string
	ins         []instruction
}

// parseDockerfile returns the global ARGs and the stages of a Dockerfile.
func parseDockerfile(t *testing.T, path string) (map[string]string, []*stage) {
	t.Helper()
	var lines []string
	cur := ""
	for _, l := range strings.Split(readFile(t, path), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		lines = append(lines, cur+trimmed)
		cur = ""
	}
	if cur != "" {
		t.Fatalf("%s ends in a line continuation", path)
	}
	args := map[string]string{}
	var stages []*stage
	for _, l := range lines {
		if l == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(l, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := &stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("%s: FROM %s", path, in.args)
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case len(stages) == 0:
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return args, stages
}

// find returns the args of the instructions cmd of a stage.
func (s *stage) find(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// execForm decodes a JSON-array instruction argument (["a", "b"]).
func execForm(t *testing.T, s string) []string {
	t.Helper()
	var v []string
	if err := yaml.Unmarshal([]byte(s), &v); err != nil || len(v) == 0 {
		t.Fatalf("%q is not an exec-form array: %v", s, err)
	}
	return v
}

// dockerEnv parses ENV k=v pairs (several per instruction).
func dockerEnv(s *stage) map[string]string {
	env := map[string]string{}
	for _, a := range s.find("ENV") {
		for _, kv := range strings.Fields(a) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

func portOfAddr(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return p
}

// TestDockerfile checks that the stages fit together: the Go release of
// go.mod, a static build of ./cmd/nexus copied from the build stage, a
// non-root user, a health check on /ready at the admin API port, and the
// data dir as a volume.
func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, "docker/Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages {
		names[s.name] = true
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name != "build" || !strings.HasPrefix(build.image, "golang:${GO_VERSION}") {
		t.Fatalf("first stage %q AS %q, want golang:${GO_VERSION}... AS build", build.image, build.name)
	}
	gomod := readFile(t, "../go.mod")
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil || args["GO_VERSION"] != m[1] {
		t.Errorf("ARG GO_VERSION=%q, go.mod says go %v", args["GO_VERSION"], m)
	}
	for _, c := range build.find("COPY") {
		f := strings.Fields(c)
		for _, src := range f[:len(f)-1] {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("build stage copies %s: %v", src, err)
			}
		}
	}
	var buildCmd string
	for _, r := range build.find("RUN") {
		if strings.Contains(r, "go build") {
			buildCmd = r
		}
	}
	bm := regexp.MustCompile(`go build .*-o (\S+) (\./\S+)`).FindStringSubmatch(buildCmd)
	if bm == nil || !strings.Contains(buildCmd, "CGO_ENABLED=0") {
		t.Fatalf("no static `CGO_ENABLED=0 ... go build -o OUT ./PKG` in the build stage: %q", buildCmd)
	}
	if st, err := os.Stat(filepath.Join("..", bm[2])); err != nil || !st.IsDir() {
		t.Errorf("the build stage builds %s: %v", bm[2], err)
	}

	// The final stage: the binary from the build stage is the entrypoint.
	var binDest, wgetDest string
	for _, c := range final.find("COPY") {
		f := strings.Fields(c)
		from := ""
		var rest []string
		for _, w := range f {
			switch {
			case strings.HasPrefix(w, "--from="):
				from = strings.TrimPrefix(w, "--from=")
			case strings.HasPrefix(w, "--"):
			default:
				rest = append(rest, w)
			}
		}
		if from != "" && !names[from] {
			t.Errorf("COPY --from=%s: no such stage", from)
		}
		if from == "build" && len(rest) == 2 && rest[0] == bm[1] {
			binDest = rest[1]
		}
		if len(rest) == 2 && strings.HasSuffix(rest[0], "/busybox") {
			wgetDest = rest[1]
		}
	}
	entry := execForm(t, strings.Join(final.find("ENTRYPOINT"), ""))
	if binDest == "" || entry[0] != binDest {
		t.Errorf("ENTRYPOINT %v is not the binary copied from the build stage's %s (to %q)", entry, bm[1], binDest)
	}
	if c := execForm(t, strings.Join(final.find("CMD"), "")); c[0] != "agent" {
		t.Errorf("CMD %v, want agent", c)
	}
	users := final.find("USER")
	if len(users) != 1 {
		t.Fatalf("final stage USER %v", users)
	}
	uid, _, _ := strings.Cut(users[0], ":")
	if uid == "0" || uid == "root" || uid == "" {
		t.Errorf("runs as %q, want a non-root user", users[0])
	}
	env := dockerEnv(final)
	httpPort := portOfAddr(t, env["NEXUS_HTTP_ADDR"])
	gwPort := portOfAddr(t, env["NEXUS_GATEWAY_ADDR"])
	expose := " " + strings.Join(final.find("EXPOSE"), " ") + " "
	for _, p := range []string{httpPort, gwPort, "8300", "8301", "8301/udp"} {
		if !strings.Contains(expose, " "+p+" ") {
			t.Errorf("EXPOSE %q lacks %s", expose, p)
		}
	}
	hc := final.find("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK %v", hc)
	}
	_, hcCmd, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc[0])
	}
	hcArgv := execForm(t, hcCmd)
	if hcArgv[0] != wgetDest || hcArgv[len(hcArgv)-1] != "http://127.0.0.1:"+httpPort+"/ready" {
		t.Errorf("HEALTHCHECK %v: want %s ... http://127.0.0.1:%s/ready", hcArgv, wgetDest, httpPort)
	}
	if v := final.find("VOLUME"); len(v) != 1 || v[0] != env["NEXUS_DATA_DIR"] {
		t.Errorf("VOLUME %v, data dir %s", v, env["NEXUS_DATA_DIR"])
	}
	if _, err := os.Stat("docker/Dockerfile.dockerignore"); err != nil {
		t.Error(err)
	}
}

// TestDockerfileBuildCommand checks the binary that the build stage's go
// build command made (nexusBinary runs that command here, without Docker):
// static, and stamped with the VERSION build argument.
func TestDockerfileBuildCommand(t *testing.T) {
	if os.Getenv("NEXUS_DEPLOY_BINARY") != "" {
		t.Skip("NEXUS_DEPLOY_BINARY is set: the Dockerfile's build command did not run")
	}
	bin := nexusBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s is dynamically linked (program header %v)", bin, p.Type)
		}
	}
	if v := strings.TrimSpace(run(t, ".", nil, bin, "version")); v != "nexus "+buildVersion {
		t.Errorf("nexus version = %q, want the VERSION build argument %q", v, buildVersion)
	}
}

// compose is the part of `docker-compose config` these tests read.
type compose struct {
	Services map[string]struct {
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Environment map[string]string `yaml:"environment"`
		Networks    map[string]*struct {
			IPv4 string `yaml:"ipv4_address"`
		} `yaml:"networks"`
		Ports []struct {
			Published any `yaml:"published"`
			Target    int `yaml:"target"`
		} `yaml:"ports"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

// TestDockerCompose validates docker-compose.yml with docker-compose
// (`config -q` needs no Docker engine) and checks that the services fit
// the image and each other.
func TestDockerCompose(t *testing.T) {
	tool := requireTool(t, "docker-compose", "docker-compose")
	file := "docker/docker-compose.yml"
	if out := run(t, ".", nil, tool, "-f", file, "config", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("docker-compose config -q: %s", out)
	}
	// The check is real: a misspelt key fails.
	bad := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(bad, []byte(strings.Replace(readFile(t, file), "ipv4_address:", "ipv4_adress:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runErr(".", nil, tool, "-f", bad, "config", "-q"); err == nil {
		t.Fatalf("a compose file with ipv4_adress passed docker-compose config: %s", out)
	}

	var c compose
	if err := yaml.Unmarshal([]byte(run(t, ".", nil, tool, "-f", file, "config")), &c); err != nil {
		t.Fatal(err)
	}
	_, stages := parseDockerfile(t, "docker/Dockerfile")
	imgEnv := dockerEnv(stages[len(stages)-1])
	root, _ := filepath.Abs("..")

	_, subnet, err := net.ParseCIDR(c.Networks["nexus"].IPAM.Config[0].Subnet)
	if err != nil {
		t.Fatalf("network nexus subnet: %v", err)
	}
	var nodes []string
	for name := range c.Services {
		if strings.HasPrefix(name, "nexus") {
			nodes = append(nodes, name)
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("nexus services %v, want 3", nodes)
	}
	nodeNames := map[string]bool{}
	for _, name := range nodes {
		s := c.Services[name]
		if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "deploy/docker/Dockerfile" {
			t.Errorf("%s builds %+v, want the repository root with deploy/docker/Dockerfile", name, s.Build)
		}
		env := s.Environment
		for k := range env {
			if !isSetting(k) {
				t.Errorf("%s: %s is no setting of nexus agent", name, k)
			}
		}
		if nodeNames[env["NEXUS_NODE"]] || env["NEXUS_NODE"] == "" {
			t.Errorf("%s: NEXUS_NODE %q empty or not unique", name, env["NEXUS_NODE"])
		}
		nodeNames[env["NEXUS_NODE"]] = true
		ip := net.ParseIP(env["NEXUS_BIND"])
		if n := s.Networks["nexus"]; n == nil || n.IPv4 != env["NEXUS_BIND"] || ip == nil || !subnet.Contains(ip) {
			t.Errorf("%s: NEXUS_BIND %s is not its static address in %v", name, env["NEXUS_BIND"], subnet)
		}
		join := strings.Split(env["NEXUS_JOIN"], ",")
		if strings.Join(join, " ") != "nexus1 nexus2 nexus3" || len(join) != len(nodes) {
			t.Errorf("%s: NEXUS_JOIN %q, want the nexus services", name, env["NEXUS_JOIN"])
		}
		if env["NEXUS_BOOTSTRAP_EXPECT"] != strconv.Itoa(len(nodes)) {
			t.Errorf("%s: NEXUS_BOOTSTRAP_EXPECT %q with %d nodes", name, env["NEXUS_BOOTSTRAP_EXPECT"], len(nodes))
		}
		if !strings.Contains(env["NEXUS_POSTGRES_URL"], "@postgres:5432/") {
			t.Errorf("%s: NEXUS_POSTGRES_URL %q does not name the postgres service", name, env["NEXUS_POSTGRES_URL"])
		}
		targets := map[int]bool{}
		for _, p := range s.Ports {
			targets[p.Target] = true
		}
		for _, a := range []string{imgEnv["NEXUS_HTTP_ADDR"], imgEnv["NEXUS_GATEWAY_ADDR"]} {
			if p, _ := strconv.Atoi(portOfAddr(t, a)); !targets[p] {
				t.Errorf("%s publishes %v, not the image's port %d", name, s.Ports, p)
			}
		}
		if len(s.Volumes) != 1 || !strings.Contains(s.Volumes[0], ":"+imgEnv["NEXUS_DATA_DIR"]+":") {
			t.Errorf("%s volumes %v, want one on the data dir %s", name, s.Volumes, imgEnv["NEXUS_DATA_DIR"])
		}
	}
	pg := c.Services["postgres"].Environment
	if u := "postgres://" + pg["POSTGRES_USER"] + ":" + pg["POSTGRES_PASSWORD"] + "@postgres:5432/" + pg["POSTGRES_DB"] + "?"; !strings.HasPrefix(c.Services["nexus1"].Environment["NEXUS_POSTGRES_URL"], u) {
		t.Errorf("NEXUS_POSTGRES_URL does not match the postgres service's user, password and database (%s)", u)
	}

	// Prometheus and Grafana get files that exist, where their configs
	// expect them.
	mounts := map[string]string{} // container path -> host path
	for _, svc := range []string{"prometheus", "grafana"} {
		for _, v := range c.Services[svc].Volumes {
			f := strings.Split(v, ":")
			if !filepath.IsAbs(f[0]) {
				continue // a named volume
			}
			if _, err := os.Stat(f[0]); err != nil {
				t.Errorf("%s mounts %s: %v", svc, f[0], err)
			}
			mounts[f[1]] = f[0]
		}
	}
	promCfg := mounts["/etc/prometheus/prometheus.yml"]
	if promCfg == "" || mounts["/etc/prometheus/alerts.yml"] == "" {
		t.Fatalf("prometheus does not get its config and alerts.yml: %v", mounts)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, promCfg)), &pc); err != nil {
		t.Fatal(err)
	}
	if len(pc.RuleFiles) != 1 || pc.RuleFiles[0] != "alerts.yml" {
		t.Errorf("prometheus rule_files %v, want alerts.yml beside the config", pc.RuleFiles)
	}
	httpPort := portOfAddr(t, imgEnv["NEXUS_HTTP_ADDR"])
	if len(pc.ScrapeConfigs) != 1 || pc.ScrapeConfigs[0].JobName != "nexus" ||
		strings.Join(pc.ScrapeConfigs[0].StaticConfigs[0].Targets, " ") != "nexus1:"+httpPort+" nexus2:"+httpPort+" nexus3:"+httpPort {
		t.Errorf("prometheus scrapes %+v, want job nexus on the three nodes' admin API", pc.ScrapeConfigs)
	}
	prov := mounts["/etc/grafana/provisioning"]
	var ds struct {
		Datasources []struct {
			UID, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(prov, "datasources/prometheus.yml"))), &ds); err != nil || len(ds.Datasources) != 1 ||
		ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana data source %+v (%v), want http://prometheus:9090", ds, err)
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(prov, "dashboards/nexus.yml"))), &dp); err != nil || len(dp.Providers) != 1 {
		t.Fatalf("grafana dashboard provider: %v %+v", err, dp)
	}
	dashDir := mounts[dp.Providers[0].Options.Path]
	if _, err := os.Stat(filepath.Join(dashDir, "nexus.json")); err != nil {
		t.Errorf("the dashboard provider reads %s, mounted from %q: %v", dp.Providers[0].Options.Path, dashDir, err)
	}
	home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if rel, ok := strings.CutPrefix(home, dp.Providers[0].Options.Path+"/"); !ok {
		t.Errorf("home dashboard %s is not in the provisioned directory", home)
	} else if _, err := os.Stat(filepath.Join(dashDir, rel)); err != nil {
		t.Error(err)
	}
}
