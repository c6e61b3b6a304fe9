package contacts

// CountSQL is the inbound apply's second statement, for the plan test.
const CountSQL = countSQL
