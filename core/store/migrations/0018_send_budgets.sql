-- A Cloud API number's send throughput, shared by every process sending from
-- it (core/messaging, SQLSlots). Meta counts a number's messages per second
-- whichever of our processes sends them, so the processes draw their send
-- slots from one schedule: tat is the time after the last slot handed out
-- (GCRA's theoretical arrival time). A process claims a few slots at a time,
-- so a number at 1,000 msg/s updates its row about twenty times a second;
-- with no index on tat those updates are HOT and the low fill factor leaves
-- them room on the page.
CREATE TABLE send_budgets (
    connection_id text PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    tat           timestamptz NOT NULL
) WITH (fillfactor = 50);
