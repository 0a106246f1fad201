package archive

// The SQL of the archive. One batch is one transaction:
//
//  1. lockBatch serializes the archivers of one cluster (a deposed leader
//     that has not noticed yet may still run one),
//  2. upsertActors/upsertNodes fill the reference tables,
//  3. insertBatch inserts the records with ON CONFLICT DO NOTHING and, in
//     the same statement, updates the history tables from the rows it
//     actually inserted (RETURNING): a record archived twice changes
//     nothing the second time. Only the last inserted record of each
//     resource in the batch matters for its current state, and
//     modified_index guards against an older event overwriting a newer one.

const lockBatch = `SELECT pg_advisory_xact_lock(hashtextextended('nexus-archive:' || $1, 0))`

const upsertActors = `INSERT INTO actors (name) SELECT DISTINCT a FROM unnest($1::text[]) AS a ORDER BY 1 ON CONFLICT DO NOTHING`

const upsertNodes = `INSERT INTO nodes (name) SELECT DISTINCT n FROM unnest($1::text[]) AS n ORDER BY 1 ON CONFLICT DO NOTHING`

const insertBatch = `
WITH input AS (
	SELECT * FROM unnest($2::bigint[], $3::integer[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
	                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
	    AS t(raft_index, position, time, actor, action, resource_type, resource, node, request_id, before, after)
),
ins AS (
	INSERT INTO audit_events (cluster_id, raft_index, position, time, actor, action, resource_type, resource,
	                          node, request_id, before, after)
	SELECT $1, raft_index, position, time, actor, action, resource_type, resource, node, request_id,
	       before::jsonb, after::jsonb
	FROM input
	ON CONFLICT DO NOTHING
	RETURNING raft_index, position, time, resource_type, resource, before, after
),
last AS (
	SELECT DISTINCT ON (resource_type, resource)
	       raft_index, time, resource_type, resource, after IS NULL AS deleted, COALESCE(after, before) AS d
	FROM ins
	WHERE resource_type IN ('service', 'instance', 'config', 'route') AND COALESCE(after, before) IS NOT NULL
	ORDER BY resource_type, resource, raft_index DESC, position DESC
),
svc AS (
	INSERT INTO services AS t (cluster_id, name, type, created_index, created_at, modified_index, modified_at,
	                           deleted_index, deleted_at)
	SELECT $1, l.resource, COALESCE(l.d->>'type', ''), COALESCE((l.d->>'create_index')::bigint, l.raft_index), l.time,
	       l.raft_index, l.time,
	       CASE WHEN l.deleted THEN l.raft_index END, CASE WHEN l.deleted THEN l.time END
	FROM last l WHERE l.resource_type = 'service'
	ON CONFLICT (cluster_id, name) DO UPDATE SET
		type = EXCLUDED.type,
		created_index = CASE WHEN t.deleted_at IS NULL THEN t.created_index ELSE EXCLUDED.created_index END,
		created_at = CASE WHEN t.deleted_at IS NULL THEN t.created_at ELSE EXCLUDED.created_at END,
		modified_index = EXCLUDED.modified_index, modified_at = EXCLUDED.modified_at,
		deleted_index = EXCLUDED.deleted_index, deleted_at = EXCLUDED.deleted_at
	WHERE t.modified_index < EXCLUDED.modified_index
	RETURNING 1
),
inst AS (
	INSERT INTO service_instances AS t (cluster_id, service, instance_id, type, address, port, node, status, tags,
	                                    metadata, document, created_index, created_at, modified_index, modified_at,
	                                    deleted_index, deleted_at)
	SELECT $1, split_part(l.resource, '/', 1), substr(l.resource, strpos(l.resource, '/') + 1),
	       COALESCE(l.d->>'type', ''), COALESCE(l.d->>'address', ''), COALESCE((l.d->>'port')::integer, 0),
	       COALESCE(l.d->>'node', ''), COALESCE(l.d->>'status', ''),
	       ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(l.d->'tags') = 'array' THEN l.d->'tags' ELSE '[]'::jsonb END)),
	       CASE WHEN jsonb_typeof(l.d->'metadata') = 'object' THEN l.d->'metadata' ELSE '{}'::jsonb END,
	       l.d, COALESCE((l.d->>'create_index')::bigint, l.raft_index), l.time, l.raft_index, l.time,
	       CASE WHEN l.deleted THEN l.raft_index END, CASE WHEN l.deleted THEN l.time END
	FROM last l WHERE l.resource_type = 'instance'
	ON CONFLICT (cluster_id, service, instance_id) DO UPDATE SET
		type = EXCLUDED.type, address = EXCLUDED.address, port = EXCLUDED.port, node = EXCLUDED.node,
		status = EXCLUDED.status, tags = EXCLUDED.tags, metadata = EXCLUDED.metadata, document = EXCLUDED.document,
		created_index = CASE WHEN t.deleted_at IS NULL THEN t.created_index ELSE EXCLUDED.created_index END,
		created_at = CASE WHEN t.deleted_at IS NULL THEN t.created_at ELSE EXCLUDED.created_at END,
		modified_index = EXCLUDED.modified_index, modified_at = EXCLUDED.modified_at,
		deleted_index = EXCLUDED.deleted_index, deleted_at = EXCLUDED.deleted_at
	WHERE t.modified_index < EXCLUDED.modified_index
	RETURNING 1
),
cfg AS (
	INSERT INTO config_entries AS t (cluster_id, key, value, created_index, created_at, modified_index, modified_at,
	                                 deleted_index, deleted_at)
	SELECT $1, l.resource, l.d->'value', COALESCE((l.d->>'create_index')::bigint, l.raft_index), l.time,
	       l.raft_index, l.time,
	       CASE WHEN l.deleted THEN l.raft_index END, CASE WHEN l.deleted THEN l.time END
	FROM last l WHERE l.resource_type = 'config'
	ON CONFLICT (cluster_id, key) DO UPDATE SET
		value = EXCLUDED.value,
		created_index = CASE WHEN t.deleted_at IS NULL THEN t.created_index ELSE EXCLUDED.created_index END,
		created_at = CASE WHEN t.deleted_at IS NULL THEN t.created_at ELSE EXCLUDED.created_at END,
		modified_index = EXCLUDED.modified_index, modified_at = EXCLUDED.modified_at,
		deleted_index = EXCLUDED.deleted_index, deleted_at = EXCLUDED.deleted_at
	WHERE t.modified_index < EXCLUDED.modified_index
	RETURNING 1
),
rt AS (
	INSERT INTO gateway_routes AS t (cluster_id, id, service, document, created_index, created_at, modified_index,
	                                 modified_at, deleted_index, deleted_at)
	SELECT $1, l.resource, COALESCE(l.d->>'service', ''), l.d, COALESCE((l.d->>'create_index')::bigint, l.raft_index),
	       l.time, l.raft_index, l.time,
	       CASE WHEN l.deleted THEN l.raft_index END, CASE WHEN l.deleted THEN l.time END
	FROM last l WHERE l.resource_type = 'route'
	ON CONFLICT (cluster_id, id) DO UPDATE SET
		service = EXCLUDED.service, document = EXCLUDED.document,
		created_index = CASE WHEN t.deleted_at IS NULL THEN t.created_index ELSE EXCLUDED.created_index END,
		created_at = CASE WHEN t.deleted_at IS NULL THEN t.created_at ELSE EXCLUDED.created_at END,
		modified_index = EXCLUDED.modified_index, modified_at = EXCLUDED.modified_at,
		deleted_index = EXCLUDED.deleted_index, deleted_at = EXCLUDED.deleted_at
	WHERE t.modified_index < EXCLUDED.modified_index
	RETURNING 1
)
SELECT count(*) FROM ins`

// selectEvents is the start of the GET /audit query; pgstore.go appends
// the filters, the order and the limit.
const selectEvents = `SELECT raft_index, position, time, actor, action, resource_type, resource, node, request_id,
       before, after
FROM audit_events WHERE cluster_id = $1`
