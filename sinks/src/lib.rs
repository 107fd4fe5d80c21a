//! Applying change batches to a green target (PostgreSQL, later MySQL/MariaDB), with exactly-once
//! progress recorded in the target's own transaction.
//!
//! Not built yet: this crate holds no sink so far. The contract it will implement is in DESIGN.md
//! ("Data flow"): a sink applies a batch of whole source transactions in one target transaction and
//! records the batch's last commit position in that same transaction, and reports the position as
//! durable only after the target committed.
