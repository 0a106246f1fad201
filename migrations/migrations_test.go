package migrations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/pgtest"
	"github.com/nexus/nexus/migrations"
)

func openDB(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestMigrations(t *testing.T) {
	pg := pgtest.StartT(t, pgtest.Options{})
	latest, err := migrations.Latest()
	if err != nil || latest < 1 {
		t.Fatalf("Latest = %d, %v", latest, err)
	}

	t.Run("empty database then no-op", func(t *testing.T) {
		db := openDB(t, pg.NewDB(t))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := migrations.List(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Applied {
				t.Errorf("fresh database: %s already applied", s.Name)
			}
		}
		applied, err := migrations.Up(ctx, db, migrations.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != len(st) || applied[len(applied)-1].Version != latest {
			t.Fatalf("first run applied %+v, want %d migrations up to %d", applied, len(st), latest)
		}
		again, err := migrations.Up(ctx, db, migrations.Options{})
		if err != nil || len(again) != 0 {
			t.Fatalf("second run applied %+v, %v; want nothing", again, err)
		}
		st, err = migrations.List(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if !s.Applied || s.AppliedAt.IsZero() {
				t.Errorf("after Up: %+v", s)
			}
		}
		// The schema answers: every table and view exists.
		for _, rel := range []string{"audit_events", "actors", "nodes", "services", "service_instances", "config_entries",
			"gateway_routes", "current_services", "service_change_history", "recent_config_changes"} {
			var n int
			if err := db.QueryRow(ctx, "SELECT count(*) FROM "+rel).Scan(&n); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		}
	})

	t.Run("concurrent runners apply each migration once", func(t *testing.T) {
		url := pg.NewDB(t)
		const runners = 5
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		results := make([][]migrations.Applied, runners)
		errs := make([]error, runners)
		start := make(chan struct{})
		for i := 0; i < runners; i++ {
			db := openDB(t, url)
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				results[i], errs[i] = migrations.Up(ctx, db, migrations.Options{})
			}(i)
		}
		close(start)
		wg.Wait()
		total := 0
		for i := range results {
			if errs[i] != nil {
				t.Errorf("runner %d: %v", i, errs[i])
			}
			total += len(results[i])
		}
		db := openDB(t, url)
		var rows, distinct int
		if err := db.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM "+migrations.TableName).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		st, _ := migrations.List(ctx, db)
		if total != len(st) || rows != len(st) || distinct != len(st) {
			t.Errorf("runners applied %d migrations in total, version table has %d rows (%d distinct); want %d each", total, rows, distinct, len(st))
		}
	})
}
