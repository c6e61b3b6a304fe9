-- The SMS-compatible send endpoint (core/sms): messages created through
-- Twilio's Messages resource shape (POST /2010-04-01/Accounts/{AccountSid}/
-- Messages.json) and delivered over WhatsApp.
--
-- A row maps the Twilio-shaped id the client knows (sid, "SM" + 32 hex) to
-- the ledger row that carries the send (messages.id); the ledger stays the
-- one record of what was sent and of its status. The body is not copied
-- here: it lives in the ledger row's content. from_address and to_address
-- are kept as the client wrote them ("whatsapp:+39..." or "+39...", a number
-- id), because Twilio echoes them that way in answers and callbacks.
CREATE TABLE sms_messages (
    sid                    text PRIMARY KEY,            -- "SM" + 32 hex
    tenant_id              text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id             text NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    number_id              text REFERENCES numbers(id) ON DELETE SET NULL,
    account_sid            text NOT NULL,               -- the account as the client named it in the path
    from_address           text NOT NULL,
    to_address             text NOT NULL,
    messaging_service_sid  text,
    num_media              integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),

    -- Status callbacks. status_callback is the client's URL (NULL: none).
    -- callback_status is the Twilio status the client last learnt (from the
    -- create answer, then from callbacks); ledger_status is the ledger status
    -- it was derived from, so a poll finds rows whose ledger row moved on by
    -- comparing messages.status with it. callback_next_at is when the row is
    -- next looked at: NULL once nothing more will be reported (no callback,
    -- a final status, or the watch ended); in the future while a failed
    -- callback waits for its retry or a deliverer holds the row.
    status_callback        text,
    callback_status        text NOT NULL,
    ledger_status          text NOT NULL,
    callback_attempts      integer NOT NULL DEFAULT 0,
    callback_next_at       timestamptz,
    callback_error         text,                        -- the last failure, for operators
    callback_at            timestamptz                  -- the last successful callback
);
CREATE INDEX sms_messages_callbacks ON sms_messages (callback_next_at) WHERE callback_next_at IS NOT NULL;
CREATE INDEX sms_messages_tenant ON sms_messages (tenant_id, created_at);
