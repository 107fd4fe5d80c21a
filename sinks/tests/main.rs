//! One test binary for this crate (the sinks' tests against real throwaway servers): each module is one file beside this one.

mod parallel;
mod pg_sink;
