// Package sessions holds the long-lived sessions of session connectors (a
// connector whose manifest sets Sessions, such as the WhatsApp linked device)
// on exactly one node of a cluster of `ponte serve` processes sharing one
// Postgres database.
//
// A node holds a connection's session through a row in session_leases: it
// acquires a missing or expired lease by incrementing its fence, renews every
// lease it holds in one statement every few seconds, and gives a lease up by
// deleting it. Times are the database's clock, the one clock all nodes share.
// Holding a lease, the node opens the session in its own plugin process
// (sdk.SessionHolder.OpenSession); the session's durable state (the device's
// keys) lives in the shared database too, so another node can open the same
// session without a new pairing when the first one dies.
//
// Two nodes must never run one session at once, so:
//   - a node closes a session as soon as a renewal shows the lease is no
//     longer its own, and closes every session by itself, before its leases
//     can expire, when it cannot renew (the database is unreachable): it
//     fences itself;
//   - every write made for a session (its state row, its events) checks, in
//     the same transaction and under a row lock on the lease, that the lease
//     still names this node with this fence and has not expired.
//
// The manager also reports sessions (session_states, session.* events and
// NOTIFYs on [NotifyChannel] for live listeners) and cleans up sessions that
// stay disconnected for days, with a warning first.
package sessions
