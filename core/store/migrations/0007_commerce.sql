-- Why a connection is disabled when Ponte disabled it (a connector reported
-- the provider revoked it, e.g. Shopify's app/uninstalled); NULL otherwise.
ALTER TABLE connections ADD COLUMN status_reason text;

-- Per-connection settings of an automation (cart recovery, order
-- notifications) as a JSON document the automation's package validates.
-- kind is the automation's name; the connection is the shop's.
CREATE TABLE automation_settings (
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    kind          text NOT NULL,
    settings      jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, kind)
);
CREATE INDEX automation_settings_tenant ON automation_settings (tenant_id);
