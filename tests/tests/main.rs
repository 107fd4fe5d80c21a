//! One test binary for this crate (the test harness's own tests): each module is one file beside this one.

mod common;
mod harness;
mod pg_connect;
mod pg_stream;
