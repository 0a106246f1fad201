package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/runner"
)

// campaignRun is one run of a campaign.
type campaignRun struct {
	Nemesis string              `json:"nemesis"`
	Round   int                 `json:"round"`
	Dir     string              `json:"dir"`
	Exit    int                 `json:"exit"`
	Summary *runner.Summary     `json:"-"`
	Verdict string              `json:"verdict"`
	Ops     int                 `json:"ops"`
	OK      int                 `json:"ok"`
	Fail    int                 `json:"fail"`
	Info    int                 `json:"info"`
	Avail   float64             `json:"availability"`
	AvailF  float64             `json:"availability_during_faults"`
	Faults  int                 `json:"faults"`
	Lost    int                 `json:"lost"`
	Unexp   int                 `json:"unexpected"`
	Lin     string              `json:"linearizable"`
	Audit   *runner.AuditCounts `json:"audit,omitempty"`
	Lock    *runner.LockCounts  `json:"lock,omitempty"`
	Version string              `json:"nexus_version"`
	Reasons []string            `json:"reasons,omitempty"`
	// Name labels the run in tables; "": the base name of Dir.
	Name string `json:"-"`
}

func (r *campaignRun) label() string {
	if r.Name != "" {
		return r.Name
	}
	return filepath.Base(r.Dir)
}

// cmdCampaign is `nexus-jepsen campaign`: rounds of one run per nemesis
// (interleaved, so a campaign cut short still covers every nemesis), with
// campaign.json and campaign.md updated after every run.
func cmdCampaign(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("campaign", stderr)
	var f runFlags
	f.register(fs)
	nemeses := fs.String("nemeses", strings.Join(append(nemesis.All(), "all"), ","),
		"nemeses to run, comma-separated; each is run alone, \"all\" is the combined run")
	runs := fs.Int("runs", 10, "runs per nemesis")
	budget := fs.Duration("budget", 0, "stop starting runs after this long (0: no limit)")
	out := fs.String("out", "", "campaign folder (default jepsen-out/campaign-<time>)")
	lock := fs.String("pause-while-exists", "", "before each run, wait while this file exists (e.g. a benchmark's lock file)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitValid
		}
		return exitUsage
	}
	f.cfg.OutDir = "(per run)"
	if err := f.finish(); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen campaign: %v\n", err)
		return exitUsage
	}
	if err := f.checkArchive(); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen campaign: %v\n", err)
		return exitUnknown
	}
	specs := strings.Split(*nemeses, ",")
	for _, s := range specs {
		if _, err := nemesis.Parse(s); err != nil {
			fmt.Fprintf(stderr, "nexus-jepsen campaign: %v\n", err)
			return exitUsage
		}
	}
	if *out == "" {
		*out = "jepsen-out/campaign-" + time.Now().Format("20060102-150405")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUnknown
	}
	start := time.Now()
	seed := f.cfg.Seed
	var results []campaignRun
	code := exitValid
	for round := 1; round <= *runs; round++ {
		for _, spec := range specs {
			if *budget > 0 && time.Since(start) > *budget {
				fmt.Fprintf(stderr, "nexus-jepsen campaign: budget %v spent after %d runs\n", *budget, len(results))
				return finishCampaign(*out, results, start, code, stdout)
			}
			waitWhileExists(*lock, stderr)
			rf := f
			rf.cfg.Nemesis = spec
			if seed != 0 {
				rf.cfg.Seed = seed + uint64(len(results))
			} else {
				rf.cfg.Seed = uint64(time.Now().UnixNano())
			}
			dir := filepath.Join(*out, fmt.Sprintf("%s-%02d", spec, round))
			fmt.Fprintf(stderr, "nexus-jepsen campaign: run %d (%s, round %d/%d) → %s\n", len(results)+1, spec, round, *runs, dir)
			exit, interrupted := supervise(&rf, dir, stderr)
			results = append(results, summarize(spec, round, dir, exit))
			if exit != exitValid && code != exitInvalid {
				code = exit
			}
			if err := writeCampaign(*out, results, start); err != nil {
				fmt.Fprintln(stderr, err)
			}
			if interrupted {
				fmt.Fprintln(stderr, "nexus-jepsen campaign: interrupted")
				return finishCampaign(*out, results, start, exitUnknown, stdout)
			}
		}
	}
	return finishCampaign(*out, results, start, code, stdout)
}

func summarize(spec string, round int, dir string, exit int) campaignRun {
	r := campaignRun{Nemesis: spec, Round: round, Dir: dir, Exit: exit, Verdict: "error"}
	s, err := runner.ReadSummary(filepath.Join(dir, runner.FileSummary))
	if err != nil {
		r.Reasons = []string{"no summary: " + err.Error()}
		return r
	}
	r.Summary, r.Verdict, r.Reasons, r.Version = s, s.Verdict, s.Reasons, s.Version
	r.Ops, r.OK, r.Fail, r.Info = s.Counts.Total, s.Counts.OK, s.Counts.Fail, s.Counts.Info
	r.Avail, r.AvailF = s.Stats.Availability.Ratio, s.Stats.AvailabilityFaults.Ratio
	r.Lost, r.Unexp, r.Audit, r.Lock = s.Lost, s.Unexpect, s.Audit, s.Lock
	for _, n := range s.Schedule.Faults {
		r.Faults += n
	}
	if res, ok := s.Results["register"]; ok {
		if d, ok := res.Details.(map[string]any); ok {
			r.Lin, _ = d["linearizable"].(string)
		}
	}
	return r
}

func finishCampaign(out string, results []campaignRun, start time.Time, code int, stdout io.Writer) int {
	_ = writeCampaign(out, results, start)
	b, _ := os.ReadFile(filepath.Join(out, "campaign.md"))
	stdout.Write(b)
	return code
}

// writeCampaign writes campaign.json and campaign.md.
func writeCampaign(out string, results []campaignRun, start time.Time) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "campaign.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "campaign.md"), []byte(campaignTable(results, time.Since(start))), 0o644)
}

// campaignTable renders one line per nemesis (totals over its runs) and one
// per run.
func campaignTable(results []campaignRun, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Campaign: %d runs in %v.\n", len(results), elapsed.Round(time.Second))
	if len(results) > 0 {
		fmt.Fprintf(&b, "Binary under test: %s.\n", results[0].Version)
	}
	b.WriteString("\n")
	b.WriteString(resultTables(results))
	return b.String()
}

// resultTables renders the per-nemesis totals and the per-run lines.
func resultTables(results []campaignRun) string {
	var b strings.Builder
	audit, lock := false, false
	for _, r := range results {
		audit = audit || r.Audit != nil
		lock = lock || r.Lock != nil
	}
	extraHead, extraSep := "", ""
	if audit {
		extraHead, extraSep = " audit rows | audit ok archived | audit lost | audit duplicated | audit unexpected |", "---|---|---|---|---|"
	}
	if lock {
		extraHead += " lock increments acked | lock indeterminate | lock fenced out | lock handovers | lock anomalies |"
		extraSep += "---|---|---|---|---|"
	}
	b.WriteString("| nemesis | runs | valid | ops | ok | fail | info | faults | availability | during faults | lost | unexpected |" + extraHead + "\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|" + extraSep + "\n")
	var order []string
	agg := map[string]*campaignRun{}
	aggAudit := map[string]*runner.AuditCounts{}
	aggLock := map[string]*runner.LockCounts{}
	valid := map[string]int{}
	count := map[string]int{}
	for _, r := range results {
		a, ok := agg[r.Nemesis]
		if !ok {
			a = &campaignRun{}
			agg[r.Nemesis] = a
			order = append(order, r.Nemesis)
		}
		count[r.Nemesis]++
		if r.Verdict == runner.VerdictValid {
			valid[r.Nemesis]++
		}
		a.Ops += r.Ops
		a.OK += r.OK
		a.Fail += r.Fail
		a.Info += r.Info
		a.Faults += r.Faults
		a.Lost += r.Lost
		a.Unexp += r.Unexp
		a.Avail += r.Avail
		a.AvailF += r.AvailF
		if r.Audit != nil {
			x := aggAudit[r.Nemesis]
			if x == nil {
				x = &runner.AuditCounts{}
				aggAudit[r.Nemesis] = x
			}
			x.Rows += r.Audit.Rows
			x.ArchivedOK += r.Audit.ArchivedOK
			x.Lost += r.Audit.Lost
			x.Duplicated += r.Audit.Duplicated
			x.Unexpected += r.Audit.Unexpected
		}
		if r.Lock != nil {
			if aggLock[r.Nemesis] == nil {
				aggLock[r.Nemesis] = &runner.LockCounts{}
			}
			aggLock[r.Nemesis].Add(r.Lock)
		}
	}
	for _, n := range order {
		a, k := agg[n], float64(count[n])
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %.3f | %.3f | %d | %d |", n, count[n], valid[n],
			a.Ops, a.OK, a.Fail, a.Info, a.Faults, a.Avail/k, a.AvailF/k, a.Lost, a.Unexp)
		if audit {
			if x := aggAudit[n]; x != nil {
				fmt.Fprintf(&b, " %d | %d | %d | %d | %d |", x.Rows, x.ArchivedOK, x.Lost, x.Duplicated, x.Unexpected)
			} else {
				b.WriteString(" - | - | - | - | - |")
			}
		}
		if lock {
			if x := aggLock[n]; x != nil {
				fmt.Fprintf(&b, " %d | %d | %d | %d | %d |", x.Acked, x.Indeterminate, x.FencedOut, x.Handovers, x.Anomalies)
			} else {
				b.WriteString(" - | - | - | - | - |")
			}
		}
		b.WriteString("\n")
	}
	extraHead, extraSep = "", ""
	if audit {
		extraHead, extraSep = " audit rows / ok archived / lost / dup / unexp |", "---|"
	}
	if lock {
		extraHead += " lock acked / indeterminate / final / anomalies |"
		extraSep += "---|"
	}
	b.WriteString("\nRuns:\n\n| run | verdict | ops | ok/fail/info | faults | availability (faults) | linearizable | lost |" + extraHead +
		" notes |\n|---|---|---|---|---|---|---|---|" + extraSep + "---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %d | %d/%d/%d | %d | %.3f (%.3f) | %s | %d |", r.label(), r.Verdict, r.Ops,
			r.OK, r.Fail, r.Info, r.Faults, r.Avail, r.AvailF, r.Lin, r.Lost)
		if audit {
			if x := r.Audit; x != nil {
				fmt.Fprintf(&b, " %d / %d / %d / %d / %d |", x.Rows, x.ArchivedOK, x.Lost, x.Duplicated, x.Unexpected)
			} else {
				b.WriteString(" - |")
			}
		}
		if lock {
			if x := r.Lock; x != nil {
				fmt.Fprintf(&b, " %d / %d / %d / %d |", x.Acked, x.Indeterminate, x.Final, x.Anomalies)
			} else {
				b.WriteString(" - |")
			}
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(r.Reasons, "; "))
	}
	return b.String()
}

// waitWhileExists blocks while path exists (checked every 5s).
func waitWhileExists(path string, stderr io.Writer) {
	if path == "" {
		return
	}
	for said := false; ; said = true {
		if _, err := os.Stat(path); err != nil {
			return
		}
		if !said {
			fmt.Fprintf(stderr, "nexus-jepsen campaign: waiting while %s exists\n", path)
		}
		time.Sleep(5 * time.Second)
	}
}
