-- A message names its conversation and, again, the conversation's tenant,
-- contact and connection (the queries filter on them without a join). Four
-- foreign keys checked those columns one by one: four lookups for every
-- message stored, inbound or outbound, two fifths of the time Postgres spent
-- storing a group of inbound messages (EXPLAIN ANALYZE of the group
-- statement). One foreign key on the four columns together does it in one
-- lookup and checks more: that the message's tenant, contact and connection
-- are its conversation's. ON UPDATE CASCADE carries a conversation's move to
-- another contact (contacts.Service.Link) to its messages; deleting a
-- tenant, contact or connection still deletes their messages, through their
-- conversations.

-- Rows written before this constraint take their conversation's values, so
-- that it holds for every row.
UPDATE messages m
SET tenant_id = c.tenant_id, contact_id = c.contact_id, connection_id = c.connection_id
FROM conversations c
WHERE c.id = m.conversation_id
  AND (m.tenant_id, m.contact_id, m.connection_id) IS DISTINCT FROM (c.tenant_id, c.contact_id, c.connection_id);

CREATE UNIQUE INDEX conversations_parties ON conversations (id, tenant_id, contact_id, connection_id);

ALTER TABLE messages
    DROP CONSTRAINT messages_tenant_id_fkey,
    DROP CONSTRAINT messages_conversation_id_fkey,
    DROP CONSTRAINT messages_contact_id_fkey,
    DROP CONSTRAINT messages_connection_id_fkey,
    ADD CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id, tenant_id, contact_id, connection_id)
        REFERENCES conversations (id, tenant_id, contact_id, connection_id) ON DELETE CASCADE ON UPDATE CASCADE;
