-- Order notifications (workflows/ordernotify): one row per shop order that
-- has had a workflow, with the highest stage handled for it, and one row per
-- notification handled (or being sent), unique per order and kind: the
-- record that makes each status go out at most once per order, across
-- workflow runs.
CREATE TABLE order_notify_orders (
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE, -- the shop
    order_id      text NOT NULL,                                              -- the shop's order id
    workflow_id   text NOT NULL,
    phone         text,                                                       -- E.164, as last notified
    -- The highest stage handled (sent, skipped, refused or failed), by the
    -- rank confirmation 1 < shipped 2 < out_for_delivery 3 < delivered 4
    -- < cancelled 5 < refunded 6; NULL and 0 before any.
    stage         text CHECK (stage IN ('confirmation', 'shipped', 'out_for_delivery', 'delivered', 'cancelled', 'refunded')),
    stage_rank    smallint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, order_id)
);
CREATE INDEX order_notify_orders_tenant ON order_notify_orders (tenant_id, updated_at DESC);

-- A notification of an order. Status sending is the decision recorded
-- before the send (mode and content), so a retried activity repeats the same
-- send under the same idempotency key; the others are final. message_id is
-- the messaging ledger's row (messages.id), not a foreign key: the ledger
-- keeps its own retention.
CREATE TABLE order_notifications (
    tenant_id             text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id         text NOT NULL,
    order_id              text NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('confirmation', 'shipped', 'out_for_delivery', 'delivered',
                                                        'cancelled', 'refunded', 'review_request')),
    status                text NOT NULL CHECK (status IN ('sending', 'sent', 'skipped', 'refused', 'failed')),
    reason                text,
    mode                  text CHECK (mode IN ('text', 'template')),
    channel_connection_id text,
    recipient             text,
    content               jsonb,
    message_id            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, order_id, kind),
    FOREIGN KEY (connection_id, order_id) REFERENCES order_notify_orders (connection_id, order_id) ON DELETE CASCADE
);
CREATE INDEX order_notifications_tenant ON order_notifications (tenant_id, updated_at DESC);
