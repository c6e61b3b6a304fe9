-- The dispatch state of an event moves out of its row into a narrow one.
-- Leasing and marking an event done update that state; on events, whose
-- rows carry the whole payload and whose pending index covered the lease
-- time and dispatched_at, neither update could be HOT, so each rewrote the
-- payload row with new entries in every index: three versions of every
-- event, about 2,000 buffers per claim and per "done" of a hundred events
-- at 1,000 events a second (pg_stat_statements). An event row is now
-- written once; its dispatch row is a few dozen bytes.
CREATE TABLE event_dispatch (
    event_id          bigint PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    dispatch_attempts integer NOT NULL DEFAULT 0,
    dispatched_at     timestamptz,
    last_error        text
);

INSERT INTO event_dispatch (event_id, next_attempt_at, dispatch_attempts, dispatched_at, last_error)
SELECT id, next_attempt_at, dispatch_attempts, dispatched_at, last_error FROM events;

CREATE INDEX event_dispatch_pending ON event_dispatch (next_attempt_at) WHERE dispatched_at IS NULL;

DROP INDEX events_pending;
ALTER TABLE events
    DROP COLUMN next_attempt_at,
    DROP COLUMN dispatch_attempts,
    DROP COLUMN dispatched_at,
    DROP COLUMN last_error;

-- Every stored event is due at once: whoever inserts events (the webhook
-- ingress, a plugin emitting through the host, the sessions' reports) gets
-- its dispatch rows from this trigger, one statement per inserting
-- statement.
CREATE FUNCTION events_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_dispatch (event_id) SELECT id FROM new_events;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_enqueue AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_enqueue();
