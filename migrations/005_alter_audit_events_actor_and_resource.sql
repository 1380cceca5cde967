-- Who did it and to what: the actor, the resource's id and namespace, and the event schema
-- version. DataStorage writes these columns, so its /health fails until this migration is applied.
-- ADD COLUMN on the partitioned parent reaches every partition, the DEFAULT one included.

-- +goose Up
ALTER TABLE audit_events
    ADD COLUMN event_version text NOT NULL DEFAULT '1.0',
    ADD COLUMN resource_id   text,
    ADD COLUMN namespace     text,
    ADD COLUMN actor_type    text,
    ADD COLUMN actor_id      text;

-- +goose Down
ALTER TABLE audit_events
    DROP COLUMN actor_id,
    DROP COLUMN actor_type,
    DROP COLUMN namespace,
    DROP COLUMN resource_id,
    DROP COLUMN event_version;
