package deploy

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/sdnotify"
)

// The files of deploy/systemd.
var systemdUnits = []string{"nexus.service", "nexus-backup.service", "nexus-backup.timer"}

const unitBinary = "/usr/local/bin/nexus"

// unit is a parsed unit file: the values of each section.key, in order.
type unit map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line of a section: %q", path, n, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	return u
}

// last is the value in effect of a single-valued key ("" and false when
// absent).
func (u unit) last(key string) (string, bool) {
	v := u[key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// unitsForVerify copies the units into a temporary directory with ExecStart
// pointing at a binary that exists (systemd-analyze verify checks it).
func unitsForVerify(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range systemdUnits {
		s := strings.ReplaceAll(readFile(t, filepath.Join("systemd", name)), unitBinary, bin)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSystemdUnitsVerify runs `systemd-analyze verify` on the units; any
// output (an unknown key is only a warning) fails.
func TestSystemdUnitsVerify(t *testing.T) {
	tool := requireTool(t, "systemd-analyze", "systemd")
	bin := nexusBinary(t)
	dir := unitsForVerify(t, bin)
	var paths []string
	for _, name := range systemdUnits {
		paths = append(paths, filepath.Join(dir, name))
	}
	// The timer finds its service through the unit path.
	env := []string{"SYSTEMD_UNIT_PATH=" + dir + ":", "SYSTEMD_LOG_COLOR=0"}
	out, err := runErr(dir, env, tool, append([]string{"verify", "--man=no"}, paths...)...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check is real: a misspelt key and a missing binary are reported.
	bad := strings.Replace(readFile(t, filepath.Join(dir, "nexus.service")), "NoNewPrivileges=", "NoNewPrivilege=", 1)
	bad = strings.ReplaceAll(bad, bin, filepath.Join(dir, "missing-nexus"))
	if err := os.WriteFile(filepath.Join(dir, "nexus.service"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runErr(dir, env, tool, "verify", "--man=no", filepath.Join(dir, "nexus.service"))
	if err == nil || !strings.Contains(out, "NoNewPrivilege") || !strings.Contains(out, "missing-nexus") {
		t.Fatalf("a broken unit passed systemd-analyze verify (%v):\n%s", err, out)
	}
}

// TestSystemdUnitsHardening rates the services with `systemd-analyze
// security --offline`: both must stay at exposure 2.0 or below ("OK").
func TestSystemdUnitsHardening(t *testing.T) {
	tool := requireTool(t, "systemd-analyze", "systemd")
	dir := unitsForVerify(t, "/bin/true")
	re := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, name := range []string{"nexus.service", "nexus-backup.service"} {
		out, err := runErr(dir, []string{"SYSTEMD_LOG_COLOR=0"}, tool, "security", "--offline=true", "--no-pager", filepath.Join(dir, name))
		m := re.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", name, err, out)
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("%s: exposure %.1f", name, score)
		if score > 2.0 {
			t.Errorf("%s: exposure %.1f, want at most 2.0:\n%s", name, score, out)
		}
	}
}

// TestSystemdUnitContents checks what the README promises of the units and
// that the files agree with each other: the user of sysusers, the data dir
// of the example config, the backup directory of tmpfiles.
func TestSystemdUnitContents(t *testing.T) {
	svc := parseUnit(t, "systemd/nexus.service")
	want := map[string]string{
		"Service.Type": "notify", "Service.NotifyAccess": "main", "Service.Restart": "on-failure",
		"Service.ExecReload": "/bin/kill -HUP $MAINPID", "Service.KillSignal": "SIGTERM",
		"Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict", "Service.PrivateTmp": "yes",
		"Service.ProtectHome": "yes", "Service.CapabilityBoundingSet": "", "Service.AmbientCapabilities": "",
		"Service.User": "nexus", "Service.Group": "nexus", "Service.StateDirectory": "nexus",
		"Service.EnvironmentFile": "-/etc/nexus/nexus.env", "Install.WantedBy": "multi-user.target",
	}
	for k, v := range want {
		if got, ok := svc.last(k); !ok || got != v {
			t.Errorf("nexus.service %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	if n, _ := svc.last("Service.LimitNOFILE"); atoi(n) < 65536 {
		t.Errorf("LimitNOFILE = %q, want at least 65536", n)
	}
	execStart, _ := svc.last("Service.ExecStart")
	f := strings.Fields(execStart)
	if len(f) != 4 || f[0] != unitBinary || f[1] != "agent" || f[2] != "--config" {
		t.Fatalf("ExecStart = %q, want %s agent --config FILE", execStart, unitBinary)
	}
	if f[3] != "/etc/nexus/nexus.yaml" {
		t.Errorf("ExecStart reads %s; the README installs systemd/nexus.yaml as /etc/nexus/nexus.yaml", f[3])
	}

	// The example config loads, and its data dir is the writable state
	// directory.
	cfg := loadExampleConfig(t)
	if rw, _ := svc.last("Service.ReadWritePaths"); !strings.Contains(" "+rw+" ", " "+cfg.DataDir+" ") {
		t.Errorf("ReadWritePaths %q does not hold the data dir %s of nexus.yaml", rw, cfg.DataDir)
	}
	if cfg.DataDir != "/var/lib/nexus" {
		t.Errorf("nexus.yaml data_dir %s is not StateDirectory=nexus (/var/lib/nexus)", cfg.DataDir)
	}

	// sysusers creates the unit's user, with the data dir as home.
	users := readFile(t, "systemd/nexus.sysusers")
	if !regexp.MustCompile(`(?m)^u nexus - "[^"]+" /var/lib/nexus /usr/sbin/nologin$`).MatchString(users) {
		t.Errorf("nexus.sysusers does not create the user nexus (home /var/lib/nexus, no shell):\n%s", users)
	}

	// The backup service writes where tmpfiles creates the directory, with
	// `nexus snapshot save`, and the timer starts it.
	bk := parseUnit(t, "systemd/nexus-backup.service")
	bkStart, _ := bk.last("Service.ExecStart")
	if !strings.Contains(bkStart, unitBinary+" snapshot save ") || !strings.Contains(bkStart, "/var/backups/nexus/") {
		t.Errorf("nexus-backup.service ExecStart %q does not run nexus snapshot save into /var/backups/nexus", bkStart)
	}
	if rw, _ := bk.last("Service.ReadWritePaths"); rw != "/var/backups/nexus" {
		t.Errorf("nexus-backup.service ReadWritePaths = %q", rw)
	}
	if !strings.Contains(readFile(t, "systemd/nexus.tmpfiles"), "d /var/backups/nexus 0700 nexus nexus") {
		t.Error("nexus.tmpfiles does not create /var/backups/nexus for the user nexus")
	}
	tm := parseUnit(t, "systemd/nexus-backup.timer")
	if v, ok := tm.last("Timer.OnCalendar"); !ok || v == "" {
		t.Error("nexus-backup.timer has no OnCalendar")
	}
	if v, ok := tm.last("Timer.Unit"); ok && v != "nexus-backup.service" {
		t.Errorf("nexus-backup.timer starts %s", v)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// loadExampleConfig loads systemd/nexus.yaml through the agent's own
// loader, with the variables of systemd/nexus.env that name settings.
func loadExampleConfig(t *testing.T) *agentconfig.Config {
	t.Helper()
	files := map[string]string{"/etc/nexus/nexus.yaml": readFile(t, "systemd/nexus.yaml")}
	cfg, err := agentconfig.Load([]string{"--config", "/etc/nexus/nexus.yaml"}, func(string) string { return "" },
		func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, os.ErrNotExist
		},
		func() (string, error) { return "host", nil }, func() (string, error) { return t.TempDir(), nil })
	if err != nil {
		t.Fatalf("systemd/nexus.yaml: %v", err)
	}
	return cfg
}

// TestSystemdEnvFilesNameSettings checks that every NEXUS_ variable of the
// example environment files is a setting of `nexus agent` (or the CLI's
// NEXUS_HTTP_ADDR / NEXUS_TOKEN for the backup).
func TestSystemdEnvFilesNameSettings(t *testing.T) {
	cli := map[string]bool{"NEXUS_HTTP_ADDR": true, "NEXUS_TOKEN": true}
	for file, allowCLI := range map[string]bool{"systemd/nexus.env": false, "systemd/backup.env": true} {
		n := 0
		for _, line := range strings.Split(readFile(t, file), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s: %q is not NAME=VALUE", file, line)
				continue
			}
			n++
			switch {
			case allowCLI && cli[k]:
			case strings.HasPrefix(k, "NEXUS_"):
				if !isSetting(k) {
					t.Errorf("%s: %s is no setting of nexus agent (not in its usage)", file, k)
				}
			case k == "GOGC" || k == "GOMAXPROCS" || k == "GOMEMLIMIT":
			default:
				t.Errorf("%s: unexpected variable %s", file, k)
			}
		}
		if n == 0 {
			t.Errorf("%s sets nothing", file)
		}
	}
}

// TestSystemdSysusersAndTmpfiles applies nexus.sysusers and nexus.tmpfiles
// to a scratch root with systemd-sysusers and systemd-tmpfiles.
func TestSystemdSysusersAndTmpfiles(t *testing.T) {
	sysusers := requireTool(t, "systemd-sysusers", "systemd")
	tmpfiles := requireTool(t, "systemd-tmpfiles", "systemd")
	if os.Geteuid() != 0 {
		if required() {
			t.Fatal("systemd-tmpfiles --root needs root to set owners; NEXUS_DEPLOY_REQUIRED=1")
		}
		t.Skip("systemd-tmpfiles --root needs root to set owners")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	run(t, root, nil, sysusers, "--root="+root, abs("systemd/nexus.sysusers"))
	passwd := readFile(t, filepath.Join(root, "etc/passwd"))
	var uid, gid int
	found := false
	for _, l := range strings.Split(passwd, "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == "nexus" {
			found = true
			uid, gid = atoi(f[2]), atoi(f[3])
			if f[5] != "/var/lib/nexus" || f[6] != "/usr/sbin/nologin" || uid == 0 || uid >= 1000 {
				t.Errorf("passwd entry %q: want a system user with home /var/lib/nexus and no shell", l)
			}
		}
	}
	if !found {
		t.Fatalf("systemd-sysusers created no user nexus:\n%s", passwd)
	}
	run(t, root, nil, tmpfiles, "--root="+root, "--create", abs("systemd/nexus.tmpfiles"))
	for _, d := range []string{"var/lib/nexus", "var/backups/nexus"} {
		st, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatalf("systemd-tmpfiles did not create /%s: %v", d, err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if !st.IsDir() || st.Mode().Perm() != 0o700 || int(sys.Uid) != uid || int(sys.Gid) != gid {
			t.Errorf("/%s: mode %v owner %d:%d, want a 0700 directory of nexus (%d:%d)", d, st.Mode(), sys.Uid, sys.Gid, uid, gid)
		}
	}
}

// TestAgentNotifiesSystemd runs a real agent with $NOTIFY_SOCKET pointing at
// a unixgram socket of the test, as systemd does for Type=notify: READY=1
// comes once /ready answers 200, SIGHUP brings RELOADING=1 then READY=1,
// SIGTERM STOPPING=1.
func TestAgentNotifiesSystemd(t *testing.T) {
	opts := clusterOptions(t, 1, "127.0.1.")
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("socket closed waiting for %s", what)
			}
			return m
		case <-time.After(90 * time.Second):
			t.Fatalf("no notification (waiting for %s)", what)
		}
		return ""
	}

	opts.Env = []string{sdnotify.EnvSocket + "=" + sock}
	c := startSingle(t, opts)
	if m := next("STATUS"); !strings.HasPrefix(m, "STATUS=waiting") {
		t.Fatalf("first notification %q, want STATUS=waiting...", m)
	}
	if m := next("READY=1"); m != "READY=1\nSTATUS=ready\n" {
		t.Fatalf("got %q, want READY=1 with STATUS=ready", m)
	}
	if code, body := httpDo(t, "GET", c.URL(0, "/ready"), ""); code != 200 {
		t.Fatalf("READY=1 sent while /ready answers %d %s", code, body)
	}

	pid := c.Node(0).PID
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := next("RELOADING=1"); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+\n$`).MatchString(m) {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	if m := next("READY=1 after the reload"); m != "READY=1\n" {
		t.Fatalf("after the reload: %q, want READY=1", m)
	}

	code, err := c.Stop(0)
	if err != nil || code != 0 {
		t.Fatalf("stop: exit %d, %v", code, err)
	}
	if m := next("STOPPING=1"); m != "STOPPING=1\n" {
		t.Fatalf("on SIGTERM: %q, want STOPPING=1", m)
	}
}

// startSingle starts a one-node cluster (it bootstraps itself).
func startSingle(t *testing.T, opts proccluster.Options) *proccluster.Cluster {
	t.Helper()
	c := proccluster.StartT(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx, 0); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBackupUnitCommand runs the backup service's ExecStart and
// ExecStartPost command lines as systemd would (with %% unescaped), against
// a real cluster and into a scratch directory: a snapshot file appears, and
// the retention step deletes only snapshots older than 14 days.
func TestBackupUnitCommand(t *testing.T) {
	bin := nexusBinary(t)
	requireTool(t, "find", "findutils")
	c := sharedCluster(t)
	dir := t.TempDir()
	bk := parseUnit(t, "systemd/nexus-backup.service")
	subst := func(cmd string) []string {
		cmd = strings.ReplaceAll(cmd, "%%", "%")
		cmd = strings.ReplaceAll(cmd, unitBinary, bin)
		cmd = strings.ReplaceAll(cmd, "/var/backups/nexus", dir)
		return splitExec(t, cmd)
	}
	old := filepath.Join(dir, "nexus-20000101T000000Z.snap")
	if err := os.WriteFile(old, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	longAgo := time.Now().Add(-20 * 24 * time.Hour)
	if err := os.Chtimes(old, longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	env := []string{"NEXUS_HTTP_ADDR=" + c.HTTPAddr(0)}
	for _, key := range []string{"Service.ExecStart", "Service.ExecStartPost"} {
		line, _ := bk.last(key)
		argv := subst(line)
		run(t, dir, env, argv[0], argv[1:]...)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "nexus-*.snap"))
	if len(snaps) != 1 || snaps[0] == old {
		t.Fatalf("snapshots after the run: %v, want one new one (the 20-day-old one deleted)", snaps)
	}
	if !regexp.MustCompile(`/nexus-\d{8}T\d{6}Z\.snap$`).MatchString(snaps[0]) {
		t.Errorf("snapshot name %s", snaps[0])
	}
	st, err := os.Stat(snaps[0])
	if err != nil || st.Size() < 64 {
		t.Fatalf("snapshot %s: %v, %d bytes", snaps[0], err, st.Size())
	}
}

// splitExec splits a unit command line: words, and single-quoted strings
// (the only quoting the units use).
func splitExec(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '\'' {
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			out = append(out, s[1:end+1])
			s = s[end+2:]
			continue
		}
		w, rest, _ := strings.Cut(s, " ")
		out = append(out, w)
		s = rest
	}
	return out
}
