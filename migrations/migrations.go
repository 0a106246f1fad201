// Package migrations holds the versioned SQL schema of the PostgreSQL audit
// archive, embedded in the binary (go:embed), and a small runner that
// applies it.
//
// A run holds a session-level pg_advisory_lock on the one connection that
// also reads the version table and runs the migrations, so several nodes
// starting together apply each migration exactly once: the others wait for
// the lock and then find nothing to do. Each migration runs in its own
// transaction together with the row that records it in
// nexus_schema_migrations, so a crash never leaves a migration applied but
// unrecorded.
//
// Why a small runner rather than pressly/goose: goose needs a *sql.DB, and
// the only PostgreSQL database/sql driver in go.mod is pgx's stdlib, which
// imports pgxpool and through it github.com/jackc/puddle/v2 — a module that
// go.mod does not list (go.sum does). Rather than require a go.mod change,
// the runner works on one *pgx.Conn: the lock, the version table and the
// migrations share that session by construction, which is the one subtle
// part goose's session locker exists for. The files keep goose's format
// ("-- +goose Up" / "-- +goose Down" sections, NNNNN_name.sql), so goose's
// CLI can still read them; the runner only goes up (roll forward).
//
// The package is a leaf: only cmd and the audit archiver import it.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TableName is the table recording applied versions.
const TableName = "nexus_schema_migrations"

// LockID is the pg_advisory_lock key held while migrating ("nexusmig").
const LockID int64 = 0x6e657875736d6967

// sqlFiles is the embedded SQL; go:embed needs a package-level variable. It
// is read-only.
//
//go:embed sql/*.sql
var sqlFiles embed.FS

// Options of a run.
type Options struct {
	// Logger receives one line per applied migration (nil: silent).
	Logger *slog.Logger
	// LockWait bounds the wait for another runner's lock (default 10m).
	LockWait time.Duration
}

// Migration is one embedded migration.
type Migration struct {
	Version int64
	Name    string
	Up      string
}

// Status is the state of one migration.
type Status struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Applied is one migration a run applied.
type Applied struct {
	Version  int64
	Name     string
	Duration time.Duration
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	names, err := fs.Glob(sqlFiles, "sql/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int64]string{}
	for _, p := range names {
		name := strings.TrimPrefix(p, "sql/")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: %s: name must be NNNNN_description.sql", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations: %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		b, err := sqlFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		up, err := upSection(string(b))
		if err != nil {
			return nil, fmt.Errorf("migrations: %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, Up: up})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// upSection returns the SQL between "-- +goose Up" and "-- +goose Down".
func upSection(s string) (string, error) {
	_, rest, ok := strings.Cut(s, "-- +goose Up")
	if !ok {
		return "", errors.New(`no "-- +goose Up" section`)
	}
	up, _, _ := strings.Cut(rest, "-- +goose Down")
	if strings.TrimSpace(up) == "" {
		return "", errors.New("empty Up section")
	}
	return up, nil
}

// Latest returns the highest embedded version.
func Latest() (int64, error) {
	all, err := All()
	if err != nil {
		return 0, err
	}
	if len(all) == 0 {
		return 0, errors.New("migrations: none embedded")
	}
	return all[len(all)-1].Version, nil
}

const createTable = `CREATE TABLE IF NOT EXISTS ` + TableName + ` (
	version    bigint PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Up applies every pending migration under the advisory lock and returns
// what it applied (nothing when the schema is current). conn must not be
// used by anyone else during the call.
func Up(ctx context.Context, conn *pgx.Conn, opts Options) ([]Applied, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	wait := opts.LockWait
	if wait <= 0 {
		wait = 10 * time.Minute
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	_, err = conn.Exec(lctx, "SELECT pg_advisory_lock($1)", LockID)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("migrations: waiting for the migration lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; a closed session releases it too.
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", LockID)
	}()
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migrations: version table: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	var out []Applied
	for _, m := range all {
		if _, ok := done[m.Version]; ok {
			continue
		}
		start := time.Now()
		if err := apply(ctx, conn, m); err != nil {
			return out, err
		}
		a := Applied{Version: m.Version, Name: m.Name, Duration: time.Since(start)}
		out = append(out, a)
		if opts.Logger != nil {
			opts.Logger.Info("applied migration", "version", a.Version, "name", a.Name, "duration", a.Duration)
		}
	}
	return out, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrations: %s: %w", m.Name, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// No arguments: the simple protocol runs every statement of the file.
	if _, err := tx.Exec(ctx, m.Up); err != nil {
		return fmt.Errorf("migrations: %s failed: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+TableName+" (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return fmt.Errorf("migrations: recording %s: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrations: %s: commit: %w", m.Name, err)
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int64]time.Time, error) {
	out := map[int64]time.Time{}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", TableName).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if !exists {
		return out, nil
	}
	rows, err := conn.Query(ctx, "SELECT version, applied_at FROM "+TableName)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, err
		}
		out[v] = at
	}
	return out, rows.Err()
}

// List returns every embedded migration and whether it is applied.
func List(ctx context.Context, conn *pgx.Conn) ([]Status, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	out := make([]Status, len(all))
	for i, m := range all {
		at, ok := done[m.Version]
		out[i] = Status{Version: m.Version, Name: m.Name, Applied: ok, AppliedAt: at}
	}
	return out, nil
}

// Current reports whether every embedded migration is applied.
func Current(ctx context.Context, conn *pgx.Conn) (bool, error) {
	st, err := List(ctx, conn)
	if err != nil {
		return false, err
	}
	for _, s := range st {
		if !s.Applied {
			return false, nil
		}
	}
	return true, nil
}
