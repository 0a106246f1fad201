package archive

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Writer is where the archiver writes batches (PGStore in production).
type Writer interface {
	Archive(ctx context.Context, clusterID string, recs []registry.AuditRecord) (int, error)
}

// archiver moves the backlog into the archive while this node leads (the
// leadership loop runs Service.Run, which runs it, only then):
// read the records above the watermark in Raft order, write them in one
// idempotent transaction, then commit a watermark command that trims the
// backlog on every node. It keeps no position of its own: every round
// starts from the replicated watermark, so a new leader resumes exactly
// where the last committed watermark says, and a batch written but not
// yet marked is written again harmlessly (ON CONFLICT DO NOTHING).
type archiver struct {
	deps    Deps
	writer  Writer
	metrics *Metrics
	log     *slog.Logger
	batch   int
	poll    time.Duration
	backoff *backoff

	// afterCommit, when set (tests), runs after a batch committed in
	// PostgreSQL and before its watermark is proposed; returning false
	// stops the archiver there, as a crash would.
	afterCommit func(last registry.AuditKey) bool
}

func (a *archiver) run(ctx context.Context) {
	a.log.Info("audit archiver running on this node (leader)")
	a.metrics.active.Set(1)
	defer a.metrics.active.Set(0)
	warned := time.Time{}
	for ctx.Err() == nil {
		if a.writer == nil {
			// This leader has no --postgres-url: archiving cannot happen here.
			if st := a.state(); st.Archiving() && time.Since(warned) > time.Minute {
				a.log.Warn("the cluster archives audit records but this leader has no --postgres-url: the backlog grows until a leader with one is elected (or set archive to off)",
					"backlog_records", st.Records)
				warned = time.Now()
			}
			sleep(ctx, 5*a.poll)
			continue
		}
		if !a.round(ctx) {
			if !a.backoff.wait(ctx) {
				break
			}
		}
	}
	a.log.Info("audit archiver stopped (not leader)")
}

func (a *archiver) state() registry.AuditState {
	tx := a.deps.Store().ReadTxn()
	defer tx.Abort()
	return tx.AuditState(nil)
}

// round archives at most one batch; false means it failed (back off).
func (a *archiver) round(ctx context.Context) bool {
	store := a.deps.Store()
	ws := memdb.NewWatchSet()
	ws.Add(store.AbandonCh())
	tx := store.ReadTxn()
	st := tx.AuditState(ws)
	meta := tx.ClusterMeta()
	var recs []registry.AuditRecord
	if st.Settings.Archive != registry.ArchiveOff && meta != nil {
		recs = tx.AuditBacklog(nil, st.Watermark, a.batch)
	}
	tx.Abort()
	switch {
	case meta == nil, st.Settings.Archive == registry.ArchiveOff:
		a.waitChange(ctx, ws)
		return true
	case !st.Attached && st.Settings.Archive == registry.ArchiveAuto:
		// Tell the cluster an archiver runs: from now on records wait.
		if err := a.propose(ctx, st.Watermark, true); err != nil {
			a.fail(stageWatermark, "attaching the archiver failed", err)
			return false
		}
		a.log.Info("audit archiver attached: records now wait in the backlog until archived")
		return true
	case len(recs) == 0:
		a.waitChange(ctx, ws)
		return true
	}
	start := time.Now()
	inserted, err := a.writer.Archive(ctx, meta.ClusterID, recs)
	if err != nil {
		a.fail(stageInsert, "archiving a batch failed", err)
		return false
	}
	a.metrics.batch.Observe(time.Since(start).Seconds())
	a.metrics.batchSize.Observe(float64(len(recs)))
	a.metrics.archived.Add(float64(inserted))
	a.metrics.duplicates.Add(float64(len(recs) - inserted))
	last := recs[len(recs)-1].Key()
	if a.afterCommit != nil && !a.afterCommit(last) {
		<-ctx.Done()
		return true
	}
	if err := a.propose(ctx, last, false); err != nil {
		a.fail(stageWatermark, "committing the watermark failed (the batch will be replayed harmlessly)", err)
		return false
	}
	a.backoff.reset()
	a.log.Debug("archived audit batch", "records", len(recs), "inserted", inserted, "through", last.String(),
		"duration", time.Since(start))
	return true
}

// waitChange blocks until the backlog state changes, Poll passed, or ctx
// ends.
func (a *archiver) waitChange(ctx context.Context, ws memdb.WatchSet) {
	wctx, cancel := context.WithTimeout(ctx, a.poll)
	defer cancel()
	_ = ws.WatchCtx(wctx)
}

func (a *archiver) fail(stage, msg string, err error) {
	a.metrics.errors.WithLabelValues(stage).Inc()
	a.log.Warn(msg, "stage", stage, "err", err)
}

// propose commits a watermark command through Raft (forwarded to the
// leader if this node just lost leadership: the watermark is true anyway).
func (a *archiver) propose(ctx context.Context, k registry.AuditKey, attach bool) error {
	b, err := a.deps.Codec.Encode(command.TypeAuditWatermark, &command.AuditWatermark{
		Meta:  command.Meta{Actor: command.ActorSystem, Node: a.deps.Node, Time: a.deps.Now().UnixNano()},
		Index: k.Index, Position: k.Position, Attach: attach,
	})
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := a.deps.Apply(actx, b)
	if err != nil {
		return err
	}
	if res != nil && res.Err != nil {
		return errors.New(res.Err.Error())
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
