-- How a workflow runs: the execution engine and the container image (pinned by digest) that
-- carries it, plus when it was last executed.

-- +goose Up
ALTER TABLE remediation_workflow_catalog
    ADD COLUMN execution_engine text NOT NULL DEFAULT 'tekton',
    ADD COLUMN container_image  text,
    ADD COLUMN container_digest text,
    ADD COLUMN last_executed_at timestamptz;

ALTER TABLE remediation_workflow_catalog
    ADD CONSTRAINT remediation_workflow_catalog_digest_needs_image
        CHECK (container_digest IS NULL OR container_image IS NOT NULL);

-- +goose Down
ALTER TABLE remediation_workflow_catalog
    DROP CONSTRAINT remediation_workflow_catalog_digest_needs_image;
ALTER TABLE remediation_workflow_catalog
    DROP COLUMN last_executed_at,
    DROP COLUMN container_digest,
    DROP COLUMN container_image,
    DROP COLUMN execution_engine;
