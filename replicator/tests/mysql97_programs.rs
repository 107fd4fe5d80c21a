//! Views, stored routines, triggers and events of an Oracle MySQL 9.7 blue carried to green and across
//! the cutover (`suites/programs_family.rs`).

use crate::common;

const FLAVOR: turnout_testbed::Flavor = turnout_testbed::Flavor::MySql9_7;

include!("suites/programs_family.rs");
