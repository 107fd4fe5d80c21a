//! `turnout cutover` and `turnout rollback` from a MariaDB 11.8 blue to an Oracle MySQL 9.7 green —
//! across the MySQL family — with the MySQL-family cutover suite (`suites/cutover_family.rs`): blue's
//! `read_only` fence has no seal, the reverse stream's hand-off is read from green's binlog once
//! green is proven complete, and the rollback seals the MySQL green with `super_read_only`.

use crate::common;

/// The servers this binary's suite runs on.
const BLUE: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb11_8;
const GREEN: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;

include!("suites/cutover_family.rs");
include!("suites/watch_family.rs");
