-- Abandoned-cart recovery (workflows/cartrecovery): a row per checkout a shop
-- connection reported while cart recovery was on, and a row per step of its
-- sequence. The workflow drives the rows; the report and the reply route
-- read them.
CREATE TABLE cart_recoveries (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id      text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    checkout_id        text NOT NULL,
    workflow_id        text NOT NULL,
    -- The customer's phone in E.164; NULL when the checkout has none or it
    -- is invalid, phone_problem then says which (no_phone, invalid_phone).
    phone              text,
    phone_problem      text,
    contact_id         text REFERENCES contacts(id) ON DELETE SET NULL,
    customer_id        text,
    email              text,
    first_name         text,
    last_name          text,
    currency           text,
    total              numeric,
    recovery_url       text,
    line_items         jsonb NOT NULL DEFAULT '[]',
    status             text NOT NULL DEFAULT 'waiting'
                       CHECK (status IN ('waiting', 'contacted', 'recovered', 'converted', 'ended', 'skipped')),
    -- Why the sequence ended or the cart was skipped.
    end_reason         text,
    -- NULL for a cart first known from its order (an order that overtook its
    -- checkout's events): it was never seen abandoned.
    first_seen_at      timestamptz,
    last_update_at     timestamptz,
    contacted_at       timestamptz,
    ended_at           timestamptz,
    order_id           text,
    converted_at       timestamptz,
    recovered_at       timestamptz,
    recovered_revenue  numeric,
    recovered_currency text,
    opted_out          boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, connection_id, checkout_id)
);

-- The reply route: a tenant's open carts by phone.
CREATE INDEX cart_recoveries_open_phone ON cart_recoveries (tenant_id, phone)
    WHERE status IN ('waiting', 'contacted');
-- The report counts each figure by the time of its own event.
CREATE INDEX cart_recoveries_seen ON cart_recoveries (tenant_id, first_seen_at);
CREATE INDEX cart_recoveries_contacted ON cart_recoveries (tenant_id, contacted_at) WHERE contacted_at IS NOT NULL;
CREATE INDEX cart_recoveries_recovered ON cart_recoveries (tenant_id, recovered_at) WHERE recovered_at IS NOT NULL;
CREATE INDEX cart_recoveries_ended ON cart_recoveries (tenant_id, ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE cart_recovery_steps (
    cart_id       bigint NOT NULL REFERENCES cart_recoveries(id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    step          int NOT NULL CHECK (step > 0),
    status        text NOT NULL CHECK (status IN ('sent', 'skipped', 'failed')),
    reason        text,
    detail        text,
    message_id    text,
    discount_code text,
    at            timestamptz NOT NULL,
    PRIMARY KEY (cart_id, step)
);
CREATE INDEX cart_recovery_steps_report ON cart_recovery_steps (tenant_id, at);
