//! `turnout cutover` and `turnout rollback` from an Oracle MySQL 9.7 blue to a MariaDB 11.8 green —
//! across the MySQL family — with the MySQL-family cutover suite (`suites/cutover_family.rs`): blue's
//! fence is sealed with `super_read_only`, the reverse stream is armed before the fence from green's
//! GTID domains, and the rollback fences a MariaDB green with `read_only`.

use crate::common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb11_8;

include!("suites/cutover_family.rs");
include!("suites/watch_family.rs");
