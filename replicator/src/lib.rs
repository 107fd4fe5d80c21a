//! The `turnout` binary's library: command line, configuration, and the commands built so far.
//!
//! Built: configuration loading and validation ([`config`]), the preflight [`check`]. The pipeline
//! runtime (`run`), `status`, `cutover`, `verify`, `teardown` and `demo` are part of the command-line
//! contract but not built yet: they say so and exit non-zero.

pub mod check;
pub mod cli;
pub mod config;
pub mod duration;
pub mod error;

pub use error::Error;
