//! The `turnout` binary's library: command line, configuration, the state store, set-up, initial
//! snapshot, the streaming pipeline and the HTTP API.
//!
//! Built: `check`, `run` (set-up, snapshot, streaming exactly-once apply, resume), `teardown`,
//! `status`. Not built yet: `cutover`, `verify`, `demo` — they say so and exit non-zero.

pub mod alerts;
pub mod assemble;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod control;
pub mod cutover;
pub mod duration;
pub mod error;
pub mod heartbeat;
pub mod http;
pub mod pipeline;
pub mod run;
pub mod setup;
pub mod snapshot;
pub mod spill;
pub mod state;
pub mod status;
pub mod verify;

pub use error::Error;
