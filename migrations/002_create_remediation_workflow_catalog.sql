-- The remediation workflow catalog: the workflows a remediation can run, one row per version.
-- Later migrations add versioning (004) and execution details (006) to this first shape.

-- +goose Up
CREATE TABLE remediation_workflow_catalog (
    workflow_id   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_name text        NOT NULL,
    version       text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    content       text        NOT NULL,
    labels        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status        text        NOT NULL DEFAULT 'active',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE remediation_workflow_catalog;
