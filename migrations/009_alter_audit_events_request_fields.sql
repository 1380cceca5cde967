-- The rest of the real service's audit event (its OpenAPI AuditEventRequest): the event type (a
-- query filter, indexed like the correlation id), the actor's address, the parent event and its
-- partition timestamp, the cluster, the severity (a query filter), the duration, the error code
-- and message, a retention override and the sensitivity flag; and resource_type becomes optional,
-- as the contract has it. DataStorage writes these columns, so its readiness check fails until
-- this migration is applied. ADD COLUMN on the partitioned parent reaches every partition.
-- Rows stored before this migration had no event type: they get '' (new rows always carry one,
-- so the default is dropped again).

-- +goose Up
ALTER TABLE audit_events
    ADD COLUMN event_type        text NOT NULL DEFAULT '',
    ADD COLUMN actor_ip          text,
    ADD COLUMN parent_event_id   uuid,
    ADD COLUMN parent_event_date timestamptz,
    ADD COLUMN cluster_id        text,
    ADD COLUMN severity          text,
    ADD COLUMN duration_ms       bigint,
    ADD COLUMN error_code        text,
    ADD COLUMN error_message     text,
    ADD COLUMN retention_days    integer,
    ADD COLUMN is_sensitive      boolean;
ALTER TABLE audit_events ALTER COLUMN event_type DROP DEFAULT;
ALTER TABLE audit_events ALTER COLUMN resource_type DROP NOT NULL;
CREATE INDEX audit_events_event_type_timestamp_idx ON audit_events (event_type, event_timestamp);

-- +goose Down
DROP INDEX audit_events_event_type_timestamp_idx;
UPDATE audit_events SET resource_type = '' WHERE resource_type IS NULL;
ALTER TABLE audit_events ALTER COLUMN resource_type SET NOT NULL;
ALTER TABLE audit_events
    DROP COLUMN is_sensitive,
    DROP COLUMN retention_days,
    DROP COLUMN error_message,
    DROP COLUMN error_code,
    DROP COLUMN duration_ms,
    DROP COLUMN severity,
    DROP COLUMN cluster_id,
    DROP COLUMN parent_event_date,
    DROP COLUMN parent_event_id,
    DROP COLUMN actor_ip,
    DROP COLUMN event_type;
