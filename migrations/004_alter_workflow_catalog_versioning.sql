-- Versioned workflows: a content hash, which version is the latest, what it replaced, and one
-- row per (name, version). A catalog that only took 002 lacks all of this.

-- +goose Up
ALTER TABLE remediation_workflow_catalog
    ADD COLUMN content_hash       text,
    ADD COLUMN is_latest_version  boolean NOT NULL DEFAULT false,
    ADD COLUMN previous_version   text,
    ADD COLUMN deprecation_notice text;

ALTER TABLE remediation_workflow_catalog
    ADD CONSTRAINT remediation_workflow_catalog_name_version_key UNIQUE (workflow_name, version);

ALTER TABLE remediation_workflow_catalog
    ADD CONSTRAINT remediation_workflow_catalog_status_known
        CHECK (status IN ('active', 'disabled', 'deprecated', 'archived'));

-- At most one latest version per workflow name.
CREATE UNIQUE INDEX remediation_workflow_catalog_one_latest
    ON remediation_workflow_catalog (workflow_name) WHERE is_latest_version;

-- +goose Down
DROP INDEX remediation_workflow_catalog_one_latest;
ALTER TABLE remediation_workflow_catalog DROP CONSTRAINT remediation_workflow_catalog_status_known;
ALTER TABLE remediation_workflow_catalog DROP CONSTRAINT remediation_workflow_catalog_name_version_key;
ALTER TABLE remediation_workflow_catalog
    DROP COLUMN deprecation_notice,
    DROP COLUMN previous_version,
    DROP COLUMN is_latest_version,
    DROP COLUMN content_hash;
