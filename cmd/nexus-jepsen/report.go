package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// cmdReport is `nexus-jepsen report DIR...`: one set of tables over the
// runs of several campaigns (each DIR/campaign.json), so that a campaign
// run in several sittings, or in parallel, is reported as one. Runs are
// labelled DIR/run.
func cmdReport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: nexus-jepsen report CAMPAIGN_DIR...")
		return exitUsage
	}
	all, err := readCampaigns(args)
	if err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen report: %v\n", err)
		return exitUnknown
	}
	var versions []string
	seen := map[string]bool{}
	code := exitValid
	for _, r := range all {
		if !seen[r.Version] {
			seen[r.Version] = true
			versions = append(versions, r.Version)
		}
		if r.Verdict == "invalid" {
			code = exitInvalid
		}
	}
	fmt.Fprintf(stdout, "Report: %d runs from %s.\nBinaries under test: %s.\n\n%s", len(all),
		strings.Join(args, ", "), strings.Join(versions, ", "), resultTables(all))
	return code
}

// readCampaigns reads the campaign.json of each dir, labelling every run
// with its campaign's base name.
func readCampaigns(dirs []string) ([]campaignRun, error) {
	var all []campaignRun
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "campaign.json"))
		if err != nil {
			return nil, err
		}
		var runs []campaignRun
		if err := json.Unmarshal(b, &runs); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(d, "campaign.json"), err)
		}
		for i := range runs {
			runs[i].Name = filepath.Base(filepath.Clean(d)) + "/" + filepath.Base(runs[i].Dir)
		}
		all = append(all, runs...)
	}
	return all, nil
}
