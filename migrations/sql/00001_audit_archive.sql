-- The audit archive: one row per audit record, keyed by (cluster id, Raft
-- index, position in the entry), with actors and nodes as reference tables,
-- and history tables that mirror the catalog from the audit stream.

-- +goose Up
CREATE TABLE actors (
    name          text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    name          text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_events (
    cluster_id    text        NOT NULL,
    raft_index    bigint      NOT NULL,
    position      integer     NOT NULL,
    time          timestamptz NOT NULL,
    actor         text        NOT NULL REFERENCES actors (name),
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource      text        NOT NULL,
    node          text        NOT NULL REFERENCES nodes (name),
    request_id    text        NOT NULL DEFAULT '',
    before        jsonb,
    after         jsonb,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, raft_index, position)
);
CREATE INDEX audit_events_resource_time ON audit_events (resource_type, resource, time DESC);
CREATE INDEX audit_events_actor_time ON audit_events (actor, time DESC);
CREATE INDEX audit_events_time_brin ON audit_events USING brin (time);

-- History tables: the catalog as the audit stream built it. A row is
-- soft-deleted (deleted_at) when its resource goes; modified_index guards
-- against applying an older event over a newer one.
CREATE TABLE services (
    cluster_id     text        NOT NULL,
    name           text        NOT NULL,
    type           text        NOT NULL,
    created_index  bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    modified_index bigint      NOT NULL,
    modified_at    timestamptz NOT NULL,
    deleted_index  bigint,
    deleted_at     timestamptz,
    PRIMARY KEY (cluster_id, name)
);

CREATE TABLE service_instances (
    cluster_id     text        NOT NULL,
    service        text        NOT NULL,
    instance_id    text        NOT NULL,
    type           text        NOT NULL,
    address        text        NOT NULL,
    port           integer     NOT NULL,
    node           text        NOT NULL,
    status         text        NOT NULL,
    tags           text[]      NOT NULL DEFAULT '{}',
    metadata       jsonb       NOT NULL DEFAULT '{}',
    document       jsonb       NOT NULL,
    created_index  bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    modified_index bigint      NOT NULL,
    modified_at    timestamptz NOT NULL,
    deleted_index  bigint,
    deleted_at     timestamptz,
    PRIMARY KEY (cluster_id, service, instance_id)
);
CREATE INDEX service_instances_metadata ON service_instances USING gin (metadata jsonb_path_ops);
CREATE INDEX service_instances_live ON service_instances (cluster_id, service) WHERE deleted_at IS NULL;

CREATE TABLE config_entries (
    cluster_id     text        NOT NULL,
    key            text        NOT NULL,
    value          jsonb,
    created_index  bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    modified_index bigint      NOT NULL,
    modified_at    timestamptz NOT NULL,
    deleted_index  bigint,
    deleted_at     timestamptz,
    PRIMARY KEY (cluster_id, key)
);

CREATE TABLE gateway_routes (
    cluster_id     text        NOT NULL,
    id             text        NOT NULL,
    service        text        NOT NULL,
    document       jsonb       NOT NULL,
    created_index  bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    modified_index bigint      NOT NULL,
    modified_at    timestamptz NOT NULL,
    deleted_index  bigint,
    deleted_at     timestamptz,
    PRIMARY KEY (cluster_id, id)
);

CREATE VIEW current_services AS
SELECT s.cluster_id, s.name, s.type, s.created_at, s.modified_at,
       count(i.instance_id) AS instances,
       count(i.instance_id) FILTER (WHERE i.status = 'passing') AS passing,
       count(i.instance_id) FILTER (WHERE i.status = 'warning') AS warning,
       count(i.instance_id) FILTER (WHERE i.status = 'critical') AS critical
FROM services s
LEFT JOIN service_instances i
       ON i.cluster_id = s.cluster_id AND i.service = s.name AND i.deleted_at IS NULL
WHERE s.deleted_at IS NULL
GROUP BY s.cluster_id, s.name, s.type, s.created_at, s.modified_at;

CREATE VIEW service_change_history AS
SELECT cluster_id,
       split_part(resource, '/', 1) AS service,
       CASE WHEN resource_type = 'instance'
            THEN substr(resource, strpos(resource, '/') + 1) END AS instance_id,
       raft_index, position, time, actor, node, action, resource_type,
       request_id, before, after
FROM audit_events
WHERE resource_type IN ('service', 'instance');

CREATE VIEW recent_config_changes AS
SELECT cluster_id, resource AS key, action,
       before -> 'value' AS old_value, after -> 'value' AS new_value,
       actor, node, time, raft_index, position, request_id
FROM audit_events
WHERE resource_type = 'config' AND time > now() - interval '7 days';

-- +goose Down
DROP VIEW recent_config_changes;
DROP VIEW service_change_history;
DROP VIEW current_services;
DROP TABLE gateway_routes;
DROP TABLE config_entries;
DROP TABLE service_instances;
DROP TABLE services;
DROP TABLE audit_events;
DROP TABLE nodes;
DROP TABLE actors;
