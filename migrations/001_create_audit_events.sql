-- Audit events: one row per thing that happened (workflow started, notification sent, ...).
-- Partitioned by month on event_timestamp. Partitions are created relative to the moment the
-- migration (or the service at start-up) runs, never for a hard-coded calendar window, and a
-- DEFAULT partition catches anything outside them so an insert never fails for lack of one.

-- +goose Up
CREATE TABLE audit_events (
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    event_timestamp timestamptz NOT NULL DEFAULT now(),
    event_category  text        NOT NULL,
    event_action    text        NOT NULL,
    event_outcome   text        NOT NULL,
    resource_type   text        NOT NULL,
    correlation_id  text        NOT NULL,
    event_data      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_timestamp),
    CONSTRAINT audit_events_event_data_is_object CHECK (jsonb_typeof(event_data) = 'object')
) PARTITION BY RANGE (event_timestamp);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- Creates the monthly partitions from `months_back` months before the current UTC month to
-- `months_ahead` months after it, and returns how many it created. Rows already sitting in the
-- DEFAULT partition for a month being created are moved into the new partition, because
-- PostgreSQL refuses to attach a range that the DEFAULT partition already holds rows for.
-- Safe to call concurrently (a transaction-scoped advisory lock serialises callers) and
-- repeatedly (existing partitions are left alone).
-- +goose StatementBegin
CREATE FUNCTION ensure_audit_events_partitions(months_back integer DEFAULT 1, months_ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    parent_schema text;
    this_month    timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    month_start   timestamp;
    lower_bound   timestamptz;
    upper_bound   timestamptz;
    part_name     text;
    created       integer := 0;
BEGIN
    IF months_back < 0 OR months_ahead < 0 THEN
        RAISE EXCEPTION 'ensure_audit_events_partitions: months_back and months_ahead must not be negative (got %, %)',
            months_back, months_ahead;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('ensure_audit_events_partitions'));
    SELECT n.nspname INTO parent_schema
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'audit_events'::regclass;

    FOR i IN -months_back .. months_ahead LOOP
        month_start := this_month + make_interval(months => i);
        lower_bound := month_start AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month') AT TIME ZONE 'UTC';
        part_name := format('audit_events_y%sm%s', to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, part_name)) IS NOT NULL;

        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       parent_schema, part_name, parent_schema);
        EXECUTE format('WITH moved AS (DELETE FROM %I.audit_events_default
                                        WHERE event_timestamp >= $1 AND event_timestamp < $2
                                        RETURNING *)
                        INSERT INTO %I.%I SELECT * FROM moved',
                       parent_schema, parent_schema, part_name)
            USING lower_bound, upper_bound;
        EXECUTE format('ALTER TABLE %I.audit_events ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent_schema, parent_schema, part_name, lower_bound, upper_bound);
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$;
-- +goose StatementEnd

SELECT ensure_audit_events_partitions(1, 3);

-- +goose Down
DROP FUNCTION ensure_audit_events_partitions(integer, integer);
DROP TABLE audit_events;
