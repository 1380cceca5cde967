-- Notification audit: one row per notification sent (or attempted) for a remediation.

-- +goose Up
CREATE TABLE notification_audit (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    remediation_id   text        NOT NULL,
    notification_id  text        NOT NULL UNIQUE,
    recipient        text        NOT NULL,
    channel          text        NOT NULL,
    message_summary  text        NOT NULL DEFAULT '',
    status           text        NOT NULL,
    sent_at          timestamptz,
    delivery_status  text,
    error_message    text,
    escalation_level integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_audit_status_known
        CHECK (status IN ('pending', 'sent', 'failed', 'acknowledged', 'escalated')),
    CONSTRAINT notification_audit_escalation_level_not_negative CHECK (escalation_level >= 0)
);

-- +goose Down
DROP TABLE notification_audit;
