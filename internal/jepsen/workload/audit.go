package workload

import "errors"

// ErrAuditNotBuilt is returned for the audit workload.
//
// Extension point: the audit workload (issue 7) checks that every
// acknowledged write has exactly one row in PostgreSQL's audit_events at the
// end. Once the audit archive exists it is a Workload that
//   - Run: performs config writes (like Register, without reads) and keeps
//     the ok/info ones with their X-Request-ID (history.Op gets the id);
//   - Final: waits until the leader's archiver watermark passes the last
//     acknowledged index, then queries audit_events (pgx is in go.mod; the
//     harness starts PostgreSQL in the harness namespace and passes
//     --postgres-url to the agents through proccluster.Options.ExtraArgs);
//   - Check: each ok write has exactly one row (keyed by raft index and
//     position), each info write at most one, no row without a write.
var ErrAuditNotBuilt = errors.New("the audit workload needs the PostgreSQL audit archive, which is not built yet")
