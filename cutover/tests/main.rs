//! One test binary for this crate (the traffic-control tests (fences, switches, counters) against real throwaway servers): each module is one file beside this one.

mod common;
mod counters;
mod fence;
mod mysql_fence;
mod sequences;
mod switch;
