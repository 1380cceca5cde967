-- Indexes for the audit trail's queries: by correlation id in time order, by category, and by
-- event data. audit_events is partitioned, so these cannot be built CONCURRENTLY: PostgreSQL
-- builds them on every partition (and on partitions created later) inside this transaction.

-- +goose Up
CREATE INDEX audit_events_correlation_id_timestamp_idx ON audit_events (correlation_id, event_timestamp);
CREATE INDEX audit_events_category_timestamp_idx ON audit_events (event_category, event_timestamp);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id);
CREATE INDEX audit_events_event_data_idx ON audit_events USING gin (event_data jsonb_path_ops);

-- +goose Down
DROP INDEX audit_events_event_data_idx;
DROP INDEX audit_events_resource_idx;
DROP INDEX audit_events_category_timestamp_idx;
DROP INDEX audit_events_correlation_id_timestamp_idx;
