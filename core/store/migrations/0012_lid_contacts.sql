-- Contacts known only by LID (WhatsApp's hidden-number identity): a linked
-- device may receive a message from a sender whose phone number WhatsApp
-- does not reveal. Such a contact has lid set and phone NULL until a later
-- event brings the number (core/contacts then attaches it, or links the
-- LID-only contact into the contact that already has that number).
ALTER TABLE contacts
    ALTER COLUMN phone DROP NOT NULL,
    ADD CONSTRAINT contacts_phone_or_lid CHECK (phone IS NOT NULL OR lid IS NOT NULL);

-- One LID-only contact per tenant and LID, so concurrent first messages from
-- one LID make one contact: the inbound upsert conflicts on this index.
-- Contacts with a phone stay unique by phone (UNIQUE (tenant_id, phone),
-- which NULL phones do not take part in).
CREATE UNIQUE INDEX contacts_lid_only ON contacts (tenant_id, lid) WHERE phone IS NULL AND lid IS NOT NULL;
