-- Messaging: agents, contacts, conversations, the message ledger (both
-- directions), consent, exclusions, templates and per-tenant messaging
-- settings.

-- Agents are the people of a tenant who work the inbox. An API key may belong
-- to an agent; the agent's role then bounds what the key can do.
CREATE TABLE users (
    id          text PRIMARY KEY,                 -- "usr_" + random
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email       text NOT NULL,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'manager', 'operator', 'read_only')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    UNIQUE (tenant_id, email)
);
ALTER TABLE api_keys ADD COLUMN user_id text REFERENCES users(id) ON DELETE CASCADE;

-- Per-tenant messaging settings.
CREATE TABLE tenant_settings (
    tenant_id            text PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    timezone             text NOT NULL DEFAULT 'UTC',          -- IANA name
    quiet_hours_start    time,                                 -- local time; NULL = no quiet hours
    quiet_hours_end      time,
    stop_keywords        text[] NOT NULL DEFAULT '{STOP,"STOP ALL",UNSUBSCRIBE,ANNULLA,DISISCRIVIMI}',
    start_keywords       text[] NOT NULL DEFAULT '{START,RIPRENDI}',
    stop_confirmation    text NOT NULL DEFAULT 'You will no longer receive messages from us. Reply START to subscribe again.',
    start_confirmation   text NOT NULL DEFAULT 'You are subscribed again. Reply STOP to unsubscribe.',
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One contact per tenant and phone (E.164). wa_id is WhatsApp's id for the
-- number; lid is the linked-device id when known.
CREATE TABLE contacts (
    id            text PRIMARY KEY,               -- "ct_" + random
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone         text NOT NULL,                  -- E.164, e.g. +393331234567
    wa_id         text,
    lid           text,
    name          text,
    tags          text[] NOT NULL DEFAULT '{}',
    fields        jsonb NOT NULL DEFAULT '{}',    -- custom fields
    external_ids  jsonb NOT NULL DEFAULT '{}',    -- {"shopify_customer": "...", "hubspot_contact": "..."}
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, phone)
);
CREATE INDEX contacts_tags ON contacts USING gin (tags);
CREATE INDEX contacts_wa_id ON contacts (tenant_id, wa_id);

-- A conversation is a contact on one number (a channel connection).
-- last_inbound_at opens the 24-hour customer-service window.
CREATE TABLE conversations (
    id               text PRIMARY KEY,            -- "cv_" + random
    tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_id       text NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    connection_id    text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    assignee_id      text REFERENCES users(id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    last_inbound_at  timestamptz,
    last_message_at  timestamptz,
    unread_count     integer NOT NULL DEFAULT 0,
    needs_human      boolean NOT NULL DEFAULT false,  -- flagged (e.g. a customer replied to an automation)
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, contact_id, connection_id)
);
CREATE INDEX conversations_inbox ON conversations (tenant_id, last_message_at DESC);
CREATE INDEX conversations_assignee ON conversations (tenant_id, assignee_id);

-- The message ledger: every inbound message and every outbound send attempt.
-- An outbound row is written before the provider call, unique on the caller's
-- idempotency key, and moved through its statuses by the provider's status
-- webhooks; provider_message_id (the wamid) is recorded after the call.
CREATE TABLE messages (
    id                   text PRIMARY KEY,        -- "msg_" + random; sent to Meta as biz_opaque_callback_data
    tenant_id            text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    conversation_id      text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    contact_id           text NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    connection_id        text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    direction            text NOT NULL CHECK (direction IN ('in', 'out')),
    kind                 text NOT NULL,           -- text, image, audio, video, document, sticker, location, contacts,
                                                  -- interactive, button, reaction, template, unsupported, ...
    content              jsonb NOT NULL,          -- the normalized message body
    purpose              text CHECK (purpose IN ('marketing', 'utility', 'authentication', 'service')),
    idempotency_key      text,                    -- outbound only
    provider_message_id  text,                    -- wamid
    status               text NOT NULL CHECK (status IN (
                             'received',                                  -- inbound
                             'queued', 'deferred', 'sending',             -- outbound, before the provider answered
                             'sent', 'delivered', 'read', 'failed',      -- outbound, provider statuses
                             'refused', 'unknown')),                      -- refused before any call; outcome never learnt
    status_reason        text,                    -- why refused / failed / deferred, machine readable
    error_code           text,                    -- provider error code, e.g. 131047
    error_detail         text,
    author_id            text REFERENCES users(id) ON DELETE SET NULL,
    deferred_until       timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    delivered_at         timestamptz,
    read_at              timestamptz,
    failed_at            timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key),
    UNIQUE (connection_id, provider_message_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
CREATE INDEX messages_unresolved ON messages (status, updated_at) WHERE status IN ('sending', 'queued', 'deferred');

-- Internal notes agents leave on a conversation (never sent).
CREATE TABLE notes (
    id               text PRIMARY KEY,            -- "note_" + random
    tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_id        text REFERENCES users(id) ON DELETE SET NULL,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_conversation ON notes (conversation_id, created_at);

-- The consent ledger: append-only; a contact's current state per purpose is
-- derived from its latest record. Evidence is kept for audits.
CREATE TABLE consent_records (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_id    text NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    purpose       text NOT NULL CHECK (purpose IN ('marketing', 'utility')),
    action        text NOT NULL CHECK (action IN ('opt_in', 'opt_out', 'confirmed')),
    source        text NOT NULL,                  -- "api", "whatsapp_keyword", "shopify", "import", ...
    method        text,                           -- "checkbox", "keyword", "double_opt_in", ...
    text_shown    text,                           -- the exact wording the contact agreed to
    text_version  text,
    ip            text,
    user_agent    text,
    evidence      jsonb NOT NULL DEFAULT '{}',    -- anything else (message id of the STOP, form id, ...)
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_records_contact ON consent_records (contact_id, purpose, occurred_at DESC, id DESC);
CREATE INDEX consent_records_tenant ON consent_records (tenant_id, id);

-- Numbers a tenant never messages, whatever their consent.
CREATE TABLE exclusions (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone       text NOT NULL,                    -- E.164
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, phone)
);

-- Message templates of a WhatsApp Business Account, per channel connection.
CREATE TABLE templates (
    id             text PRIMARY KEY,              -- "tpl_" + random
    tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id  text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    provider_id    text,                          -- Meta's template id
    name           text NOT NULL,
    language       text NOT NULL,                 -- e.g. it, en_US
    category       text NOT NULL CHECK (category IN ('marketing', 'utility', 'authentication')),
    status         text NOT NULL CHECK (status IN ('approved', 'pending', 'rejected', 'paused', 'disabled', 'incompatible')),
    status_reason  text,
    components     jsonb NOT NULL DEFAULT '[]',   -- Meta's component objects
    parameters     integer NOT NULL DEFAULT 0,    -- number of body variables {{1}}..{{n}}
    synced_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, name, language)
);
