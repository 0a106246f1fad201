package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/migrations"
	"github.com/nexus/nexus/storage/archive"
)

// runMigrate is `nexus migrate status|up`: it talks to PostgreSQL directly
// (not through an agent). Exit 0 ok, 1 failure, 2 usage.
func runMigrate(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: nexus migrate status|up [--postgres-url URL] [--timeout 1m]")
		fmt.Fprintln(stderr, "  status  list the archive migrations and whether each is applied")
		fmt.Fprintln(stderr, "  up      apply the pending ones (under the advisory lock agents use)")
		fmt.Fprintln(stderr, "  --postgres-url defaults to $NEXUS_POSTGRES_URL (DATABASE_URL is not read)")
	}
	if len(args) == 0 || (args[0] != "status" && args[0] != "up") {
		usage()
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pgURL := fs.String("postgres-url", getenv("NEXUS_POSTGRES_URL"), "")
	timeout := fs.Duration("timeout", time.Minute, "")
	if err := fs.Parse(args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "nexus migrate:", err)
		}
		usage()
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "nexus migrate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *pgURL == "" {
		fmt.Fprintln(stderr, "nexus migrate: --postgres-url (or NEXUS_POSTGRES_URL) is required")
		return 2
	}
	if err := migrate(sub, *pgURL, *timeout, stdout); err != nil {
		fmt.Fprintln(stderr, "nexus migrate:", err)
		return 1
	}
	return 0
}

func migrate(sub, rawURL string, timeout time.Duration, stdout io.Writer) error {
	pc, err := archive.ParseURL(rawURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, pc.Conn)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", pc.Redacted, err)
	}
	defer conn.Close(context.Background())
	if sub == "up" {
		applied, err := migrations.Up(ctx, conn, migrations.Options{})
		for _, a := range applied {
			fmt.Fprintf(stdout, "applied %s (%s)\n", a.Name, a.Duration.Round(time.Millisecond))
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "schema is current: nothing to apply")
		}
		return nil
	}
	st, err := migrations.List(ctx, conn)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	for _, s := range st {
		state, at := "pending", ""
		if s.Applied {
			state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
	}
	return tw.Flush()
}
