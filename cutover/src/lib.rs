//! Lag model, cutover state machine, write fences (pgbouncer, read-only), traffic switches
//! (pgbouncer, haproxy, command) and sequence sync.
//!
//! Not built yet: this crate holds no cutover logic so far. The contract it will implement is in
//! DESIGN.md ("Lag" and "Cutover").
