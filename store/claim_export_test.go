package store

// ClaimDueSQLForTest lets the tests EXPLAIN how claims find due events.
const ClaimDueSQLForTest = claimDueSQL
