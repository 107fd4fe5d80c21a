//! Views, stored routines, triggers and events of a MariaDB 10.11 blue carried to green and across the
//! cutover (`suites/programs_family.rs`; the same suite runs on Oracle MySQL 9.7 in
//! `mysql97_programs.rs`).

use crate::common;

const FLAVOR: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;

include!("suites/programs_family.rs");
