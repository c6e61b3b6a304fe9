-- conversations_inbox (tenant_id, last_message_at DESC) served the first
-- inbox listing; the listing has since sorted on conversations_activity
-- (tenant_id, COALESCE(last_message_at, created_at) DESC, id DESC), and no
-- query uses this index. It still cost an index entry for every new
-- conversation and for every update of last_message_at, that is for every
-- inbound message.
DROP INDEX IF EXISTS conversations_inbox;
