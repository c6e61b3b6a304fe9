-- The nodes that can hold sessions (core/sessions): each node running a
-- session connector's plugin renews its row at every scan; a row past
-- expires_at is a node that stopped or died. The session managers divide the
-- sessions by the count of live nodes, including nodes that hold none yet
-- (a node that just started), which the leases alone cannot show.
CREATE TABLE session_nodes (
    node        text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
