-- Payment links sent in a WhatsApp chat (workflows/paymentlink): the
-- recipient and the Cloud API number the link goes out on, and the text that
-- carries it. NULL for links created without a chat.
ALTER TABLE payment_links
    ADD COLUMN chat_to            text,
    ADD COLUMN chat_connection_id text REFERENCES connections(id),
    ADD COLUMN chat_message       text;
