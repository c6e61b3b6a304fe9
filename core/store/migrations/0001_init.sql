-- Ponte's first schema: tenants and their API keys, connections to external
-- systems, the inbound event outbox, and payment links.

CREATE TABLE tenants (
    id          text PRIMARY KEY,                 -- "ten_" + random
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are random secrets shown once; only their SHA-256 is kept. The
-- prefix (the first characters of the key) finds the row without a scan and is
-- safe to show in listings.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,                -- "key_" + random
    tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    hash         bytea NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- A connection is a tenant's configured instance of a connector. Non-secret
-- configuration is plain JSON; secret fields (as the connector's manifest marks
-- them) are one JSON object sealed with AES-256-GCM under the master key.
CREATE TABLE connections (
    id          text PRIMARY KEY,                 -- "con_" + random; also the webhook path
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connector   text NOT NULL,
    name        text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}',
    secrets     bytea,                            -- nonce || ciphertext, or NULL when none
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_tenant ON connections (tenant_id, created_at);

-- Small per-connection values a connector keeps through the host service
-- (cursors, tokens it refreshed, ...).
CREATE TABLE connection_state (
    connection_id text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    key           text NOT NULL,
    value         bytea NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, key)
);

-- Inbound events, stored before the provider gets its 2xx, one per
-- (connection, dedupe key), and the outbox the dispatcher drains.
CREATE TABLE events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id     text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    dedupe_key        text NOT NULL,
    type              text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    correlation       jsonb NOT NULL DEFAULT '{}',
    payload           jsonb NOT NULL,
    dispatched_at     timestamptz,
    dispatch_attempts integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    UNIQUE (connection_id, dedupe_key)
);
CREATE INDEX events_tenant_received ON events (tenant_id, id);
CREATE INDEX events_pending ON events (next_attempt_at, id) WHERE dispatched_at IS NULL;

-- Payment links sent in chat: one row per link, driven by its workflow.
CREATE TABLE payment_links (
    id               text PRIMARY KEY,            -- "pl_" + random
    tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id    text NOT NULL REFERENCES connections(id),
    idempotency_key  text,
    status           text NOT NULL DEFAULT 'creating'
                     CHECK (status IN ('creating', 'open', 'paid', 'expired', 'failed', 'refunded')),
    amount           bigint,                      -- minor units; NULL when a price id is used
    currency         text,
    product_name     text,
    price_id         text,
    quantity         integer NOT NULL DEFAULT 1,
    metadata         jsonb NOT NULL DEFAULT '{}',
    url              text,
    provider_id      text,                        -- e.g. Stripe's plink_...
    workflow_id      text NOT NULL,
    expires_at       timestamptz NOT NULL,
    paid_at          timestamptz,
    amount_paid      bigint,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX payment_links_tenant ON payment_links (tenant_id, created_at);
