//! `turnout run` (the real binary) from a MariaDB blue to a MariaDB green: schema copy and consistent
//! snapshot, streaming from the binlog, every column type, keys of every shape, TRUNCATE and additive
//! DDL, a transaction far beyond the memory budget, kill -9 at several points, restarts of blue and
//! green, and the refusals (non-InnoDB tables, DDL turnout cannot apply). Every test ends by comparing
//! blue and green by the bytes of every column of every row. The same suite runs on Oracle MySQL 9.7
//! in `mysql97.rs`.

use crate::common;

/// The servers this binary's suite runs on.
const FLAVOR: turnout_testbed::Flavor = turnout_testbed::Flavor::MariaDb10_11;

include!("suites/mysql_family.rs");
