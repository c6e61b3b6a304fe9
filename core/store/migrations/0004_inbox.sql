-- Inbox: linking an unknown sender into an existing contact, and the indexes
-- of the inbox's lists.

-- A contact linked (merged) into another keeps its row, its id and its phone
-- as a tombstone: inbound messages from that phone resolve to merged_into,
-- and rows that reference the old id (the consent ledger, append-only) stay
-- valid. Its conversations and messages move to the surviving contact.
ALTER TABLE contacts
    ADD COLUMN merged_into text REFERENCES contacts(id) ON DELETE SET NULL,
    ADD COLUMN merged_at   timestamptz,
    ADD COLUMN merged_by   text REFERENCES users(id) ON DELETE SET NULL,
    ADD CONSTRAINT contacts_not_merged_into_self CHECK (merged_into IS DISTINCT FROM id);

-- Conversation list: newest activity first, keyset on (activity, id).
CREATE INDEX conversations_activity ON conversations
    (tenant_id, (COALESCE(last_message_at, created_at)) DESC, id DESC);

-- Contact list: newest first, keyset on (created_at, id); the phone search is
-- a prefix match.
CREATE INDEX contacts_list ON contacts (tenant_id, created_at DESC, id DESC) WHERE merged_into IS NULL;
CREATE INDEX contacts_phone_prefix ON contacts (tenant_id, phone text_pattern_ops);
