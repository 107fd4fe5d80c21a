//! The MariaDB LTS upgrade operators make — 10.11 as blue, 11.8 as green — through the whole
//! MySQL-family cutover suite (`suites/cutover_family.rs`): cutover under load through haproxy,
//! kill -9 while fenced and while switching, triggers and schema objects, and the rollback window
//! back to 10.11.

use crate::common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb11_8;

include!("suites/cutover_family.rs");
include!("suites/watch_family.rs");
