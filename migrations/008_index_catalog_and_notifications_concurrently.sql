-- Indexes on the (non-partitioned) workflow catalog and notification audit, built CONCURRENTLY so
-- writers are not blocked on a live database. CONCURRENTLY cannot run inside a transaction, so
-- this file is NO TRANSACTION and each statement runs on its own. No IF NOT EXISTS: a failed
-- concurrent build leaves an INVALID index behind, which must be noticed, not skipped.

-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY remediation_workflow_catalog_labels_idx
    ON remediation_workflow_catalog USING gin (labels jsonb_path_ops);
CREATE INDEX CONCURRENTLY remediation_workflow_catalog_status_idx
    ON remediation_workflow_catalog (status, workflow_name);
CREATE INDEX CONCURRENTLY notification_audit_remediation_id_idx
    ON notification_audit (remediation_id, created_at);
CREATE INDEX CONCURRENTLY notification_audit_status_idx
    ON notification_audit (status, created_at);

-- +goose Down
DROP INDEX CONCURRENTLY notification_audit_status_idx;
DROP INDEX CONCURRENTLY notification_audit_remediation_id_idx;
DROP INDEX CONCURRENTLY remediation_workflow_catalog_status_idx;
DROP INDEX CONCURRENTLY remediation_workflow_catalog_labels_idx;
