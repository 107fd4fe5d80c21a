//! The rollback window after a cutover: the reverse stream green → blue that the cutover armed before
//! writes were fenced, and what `turnout finish` and `turnout teardown` drop.
//!
//! Guarantees:
//! - No write green accepts is missed: the hand-off position is taken on green before traffic moves,
//!   so every transaction green commits for the application commits after it. PostgreSQL: the
//!   reverse slot's consistent point, where blue's origin starts, before the fence. MariaDB: green's
//!   binlog end and GTID state there, before the fence, recorded as the reverse stream's progress on
//!   blue. Oracle MySQL: the same, read inside the pause once green is proven complete and recorded on
//!   blue when the reverse stream starts.
//! - Nothing goes round in a loop: what turnout's forward apply wrote on green is marked and dropped,
//!   or precedes the hand-off. PostgreSQL: its replication origin (`origin 'none'` on 16+, and by the
//!   Origin message on every version). MariaDB: its own GTID domain, whose transactions the reverse
//!   stream reads and drops. Oracle MySQL: blue is sealed when the hand-off is read, so the forward
//!   apply has nothing left to write after it.
//! - The reverse stream is the forward pipeline with the roles swapped ([`crate::config::reversed`],
//!   run by `turnout run` after the cutover: [`crate::run::run`]):
//!   the same exactly-once apply (blue's origin, or blue's progress row, advances in the transaction
//!   that applies), lag, metrics and alerts; its state lives in `state.dir/reverse`.
//! - Blue stays fenced for applications (pgbouncer / haproxy point at green, a read-only fence stays
//!   on blue's database); turnout's own apply session on blue writes regardless.

use crate::config::Config;
use crate::error::Error;
use crate::source::Names;

/// Drops what the reverse stream used, each if it exists ([`crate::source::family::Family::drop_reverse`]). Returns one line
/// per thing done.
pub async fn drop_reverse(config: &Config, names: &Names) -> Result<Vec<String>, Error> {
    crate::source::family::of(config).drop_reverse(config, names).await
}
