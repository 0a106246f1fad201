package archive

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/registry"
)

// PGStore reads and writes the audit archive in PostgreSQL.
type PGStore struct {
	pool *Pool
}

// NewPGStore returns a store over pool.
func NewPGStore(pool *Pool) *PGStore { return &PGStore{pool: pool} }

// batchColumns are the records of a batch as column arrays.
type batchColumns struct {
	index                                                  []int64
	position                                               []int32
	time                                                   []time.Time
	actor, action, resourceType, resource, node, requestID []string
	before, after                                          []*string
	actors, nodes                                          []string
}

func columns(recs []registry.AuditRecord) batchColumns {
	n := len(recs)
	c := batchColumns{
		index: make([]int64, n), position: make([]int32, n), time: make([]time.Time, n),
		actor: make([]string, n), action: make([]string, n), resourceType: make([]string, n),
		resource: make([]string, n), node: make([]string, n), requestID: make([]string, n),
		before: make([]*string, n), after: make([]*string, n),
	}
	for i := range recs {
		r := &recs[i]
		c.index[i], c.position[i] = int64(r.Index), int32(r.Position)
		c.time[i] = time.Unix(0, r.Time).UTC()
		c.actor[i], c.action[i], c.resourceType[i] = orUnknown(r.Actor), r.Action, r.ResourceType
		c.resource[i], c.node[i], c.requestID[i] = r.Resource, orUnknown(r.Node), r.RequestID
		c.before[i], c.after[i] = jsonText(r.Before), jsonText(r.After)
	}
	c.actors, c.nodes = c.actor, c.node
	return c
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// jsonText passes a document as text (NULL for none); the SQL casts it.
func jsonText(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// Archive writes a batch in one transaction and returns how many records
// it inserted (the rest were archived before: a replay after a leader
// change or a lost watermark).
func (s *PGStore) Archive(ctx context.Context, clusterID string, recs []registry.AuditRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	c := columns(recs)
	var inserted int
	err := s.pool.With(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(lockBatch, clusterID)
			b.Queue(upsertActors, c.actors)
			b.Queue(upsertNodes, c.nodes)
			b.Queue(insertBatch, clusterID, c.index, c.position, c.time, c.actor, c.action, c.resourceType,
				c.resource, c.node, c.requestID, c.before, c.after)
			br := tx.SendBatch(ctx, b)
			for i := 0; i < 3; i++ {
				if _, err := br.Exec(); err != nil {
					_ = br.Close()
					return err
				}
			}
			if err := br.QueryRow().Scan(&inserted); err != nil {
				_ = br.Close()
				return err
			}
			return br.Close()
		})
	})
	if err != nil {
		return 0, fmt.Errorf("archiving %d records (%s..%s): %w", len(recs), recs[0].Key(), recs[len(recs)-1].Key(), err)
	}
	return inserted, nil
}

// List answers GET /audit from the archive: records of clusterID that
// match f, newest first.
func (s *PGStore) List(ctx context.Context, clusterID string, f registry.AuditFilter) ([]registry.AuditRecord, error) {
	var q strings.Builder
	q.WriteString(selectEvents)
	args := []any{clusterID}
	add := func(cond string, v any) {
		args = append(args, v)
		q.WriteString(" AND " + strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ResourceType != "" {
		add("resource_type = ?", f.ResourceType)
	}
	if f.Resource != "" {
		add("resource = ?", f.Resource)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Since != 0 {
		add("time >= ?", time.Unix(0, f.Since).UTC())
	}
	if !f.Before.IsZero() {
		args = append(args, int64(f.Before.Index), int32(f.Before.Position))
		fmt.Fprintf(&q, " AND (raft_index, position) < ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, f.Limit)
	fmt.Fprintf(&q, " ORDER BY raft_index DESC, position DESC LIMIT $%d", len(args))
	var out []registry.AuditRecord
	err := s.pool.With(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, q.String(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r registry.AuditRecord
			var idx int64
			var pos int32
			var t time.Time
			var before, after []byte
			if err := rows.Scan(&idx, &pos, &t, &r.Actor, &r.Action, &r.ResourceType, &r.Resource, &r.Node,
				&r.RequestID, &before, &after); err != nil {
				return err
			}
			r.Index, r.Position, r.Time = uint64(idx), uint32(pos), t.UnixNano()
			r.Before, r.After = before, after
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("reading the audit archive: %w", err)
	}
	return out, nil
}
