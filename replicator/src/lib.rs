//! The `turnout` binary's library: command line, configuration, the source-agnostic pipeline
//! ([`pipeline`]: source → assembler → batcher → sink → acknowledgement), each source's own
//! administration under [`source`] (PostgreSQL in [`source::pg`]), the state store, the HTTP API and
//! status, alerts, and cutover and rollback orchestration.

pub mod alerts;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod cutover;
pub mod demo;
pub mod duration;
pub mod error;
pub mod http;
pub mod http_client;
pub mod journal;
pub mod names;
pub mod pipeline;
pub mod rollback;
pub mod run;
pub mod source;
pub mod spill;
pub mod state;
pub mod status;
pub mod tables;
pub mod verify;

pub use error::Error;
