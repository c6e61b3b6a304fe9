-- Long-lived sessions of session connectors (sdk.SessionHolder; the
-- WhatsApp linked device) and the numbers a tenant sends from.

-- The lease that gives one node a connection's session. A node acquires an
-- expired (or missing) lease by incrementing fence, renews it before
-- expires_at, and gives it up by deleting it. Every write a holder makes on
-- behalf of the session checks owner and fence, so a node that lost the
-- lease (paused, partitioned) cannot overwrite its successor's record.
-- Times are the database's clock, the one clock all nodes share.
CREATE TABLE session_leases (
    connection_id text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    owner         text NOT NULL,              -- the holding node's id (random per process)
    owner_url     text NOT NULL DEFAULT '',   -- where the holder's internal API answers, for routed actions
    fence         bigint NOT NULL,            -- incremented at every acquisition
    acquired_at   timestamptz NOT NULL DEFAULT now(),
    renewed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX session_leases_owner ON session_leases (owner);

-- The latest report of a connection's session (sdk.SessionUpdate), written
-- by the lease holder. since is when state last changed; every change is
-- also an event (session.state_changed) in the events table.
CREATE TABLE session_states (
    connection_id    text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    state            text NOT NULL CHECK (state IN ('pairing', 'connecting', 'connected', 'disconnected',
                                                    'logged_out', 'banned', 'temporarily_banned')),
    reason           text NOT NULL DEFAULT '',
    since            timestamptz NOT NULL DEFAULT now(),
    retry_at         timestamptz,
    banned_until     timestamptz,
    qr_code          text,                    -- the current pairing QR payload, cleared once paired
    qr_expires_at    timestamptz,
    pairing_code     text,                    -- the current phone pairing code
    phone            text,                    -- the linked account, E.164
    jid              text,
    lid              text,
    push_name        text,
    platform         text,
    phone_seen_at    timestamptz,             -- the account's primary phone last seen active
    connected_at     timestamptz,             -- last time the session was connected
    -- Warnings already given, so each is given once per episode: the
    -- cleanup warning for a session disconnected or logged out too long,
    -- and the warning for a phone away for 12 days.
    cleanup_warned_at timestamptz,
    phone_warned_at   timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_states_tenant ON session_states (tenant_id);

-- A number a tenant sends from: a linked device (its own connection of the
-- linkeddevice connector, created with the number) or a Cloud API number
-- (an existing cloudapi connection given a label). modules switches the
-- per-number modules; pacing holds the linked-device pacing settings
-- (messages per minute, new contacts per day, random spacing, typing).
CREATE TABLE numbers (
    id            text PRIMARY KEY,                 -- "num_" + random
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('linked_device', 'cloud_api')),
    label         text NOT NULL,
    connection_id text NOT NULL UNIQUE REFERENCES connections(id) ON DELETE CASCADE,
    modules       jsonb NOT NULL DEFAULT '{"automations": true, "campaigns": true}',
    pacing        jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_tenant ON numbers (tenant_id, created_at);

-- The linked-device connector keeps its device store (keys, sessions,
-- contacts of each paired device) in whatsmeow's own tables, with its own
-- version table, in this schema.
CREATE SCHEMA IF NOT EXISTS whatsmeow;

-- Linked devices may know a sender only by LID (WhatsApp's hidden-number
-- identity); inbound messages then find the contact by it.
CREATE INDEX contacts_lid ON contacts (tenant_id, lid) WHERE lid IS NOT NULL;
