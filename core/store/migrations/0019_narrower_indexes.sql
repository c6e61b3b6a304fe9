-- Three indexes that every inbound message from a new sender paid for and
-- nothing read:
--
-- * messages' idempotency keys: only sends have one, yet the unique
--   constraint took an entry for every inbound message too (a NULL key).
--   The partial unique index holds the sends' keys alone; a lookup by key
--   (idempotency_key = $n) implies NOT NULL, so it still uses it, and the
--   ON CONFLICT clauses name its predicate.
-- * contacts' phones were indexed twice: unique on (tenant_id, phone) for
--   the upserts, and again with text_pattern_ops for the prefix search. One
--   unique index with text_pattern_ops serves both: its equality is plain
--   text equality, and ON CONFLICT (tenant_id, phone) infers it.
-- * contacts' tags: GIN gives a contact with no tags an "empty item" entry,
--   so every new contact went through the GIN pending list (and, when the
--   list filled, an insert paid for merging it). The tag filters only look
--   for contacts that have a tag; they say so (tags <> '{}') to use the
--   partial index.
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_idempotency_key_key;
CREATE UNIQUE INDEX messages_idempotency ON messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE UNIQUE INDEX contacts_phone ON contacts (tenant_id, phone text_pattern_ops);
ALTER TABLE contacts DROP CONSTRAINT contacts_tenant_id_phone_key;
DROP INDEX contacts_phone_prefix;

DROP INDEX contacts_tags;
CREATE INDEX contacts_tags ON contacts USING gin (tags) WHERE tags <> '{}'::text[];
