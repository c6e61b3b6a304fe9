-- Consent keywords and template status ordering (core/consent, core/templates).

-- A STOP or START keyword is applied at most once per inbound message, even
-- when the event is delivered again or applied twice at the same time: the
-- records of a keyword carry the wamid in evidence.message_id, unique per
-- contact and purpose.
CREATE UNIQUE INDEX consent_records_keyword_message
    ON consent_records (contact_id, purpose, (evidence->>'message_id'))
    WHERE source = 'whatsapp_keyword';

-- The confirmation a STOP or START keyword earns, sent once. A delivery claims
-- the row (claimed_until) before calling the sender and marks it notified
-- after; a crashed claim expires and the next delivery sends again with the
-- same idempotency key, which the message ledger deduplicates.
CREATE TABLE consent_confirmations (
    tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id     text NOT NULL,                 -- the wamid of the keyword message
    contact_id     text NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    connection_id  text NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    keyword        text NOT NULL CHECK (keyword IN ('stop', 'start')),
    attempts       integer NOT NULL DEFAULT 0,
    claimed_until  timestamptz,
    notified_at    timestamptz,
    gave_up_reason text,                          -- the sender refused for good (e.g. excluded number)
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);

-- When a template's status last moved, by the provider's clock: a status
-- update older than what is stored (webhooks arrive out of order, a sync
-- already saw a newer state) is ignored.
ALTER TABLE templates ADD COLUMN status_at timestamptz;
CREATE INDEX templates_tenant ON templates (tenant_id, name, language, id);
