// Package localdev runs Ponte's backing servers on one machine: a Postgres
// cluster in a data directory, a Temporal dev server and stripe-mock, all bound
// to 127.0.0.1. `ponte dev` (Dev) uses it to run the whole product locally and
// the test environment (deploy/testenv) uses it to give integration tests real
// servers.
//
// Every server is a child process in its own process group, so a Ctrl-C in the
// terminal reaches only the supervising process, which then stops the children
// in order (Ponte, Temporal, Postgres). Children also get a parent-death
// signal, so a supervisor that dies without cleaning up (a panic, kill -9, a
// test timeout) does not leave servers behind. Their output goes to log files,
// never to the terminal.
package localdev
