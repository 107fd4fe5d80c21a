//! The building blocks of a cutover (`docs/src/guide/cutover.md`), for the orchestration in `turnout`
//! to call in order: fence writes on blue, (prove green caught up — not here), sync sequences,
//! switch traffic; undo the fence when a step before the switch fails.
//!
//! * [`WriteFence`] (`fence`) — pgbouncer `PAUSE`, read-only database + ending sessions, or none;
//!   `apply`, `undo`, `is_fenced`, `check`.
//! * [`TrafficSwitch`] (`switch`) — pgbouncer entry rewrite + `RELOAD` + `RESUME`, haproxy runtime
//!   API, an operator's command, or none; `to_green`, `to_blue`, `check`.
//! * [`SessionHold`] (`hold`) — haproxy: new MySQL/MariaDB sessions queued through the write pause
//!   behind a session of turnout's own on the fenced server, whose limit is set to 1.
//! * [`ReadSplit`] (`share`) — a canary's share of the read endpoint's connections for green:
//!   haproxy server weights, a pgbouncer host list, or an operator's command; `set`, `green_seen`,
//!   `check`.
//! * [`sync_sequences`] (`sequences`) — every sequence of blue carried to green.
//! * [`ReadOnlyFence`] (`mysql_fence`) — MariaDB/MySQL: `read_only` on, other accounts' sessions
//!   ended, accounts that could still write listed; on MySQL sealed with `super_read_only` after
//!   the sentinel; `apply`, `seal`, `undo`, `is_fenced`.
//! * [`sync_counters`] (`counters`) — MariaDB/MySQL: every AUTO_INCREMENT counter and MariaDB
//!   SEQUENCE on green moved at or beyond blue's next value.
//! * [`hand_over_triggers`] (`triggers`) — MySQL/MariaDB: inside the pause, the fenced side's
//!   triggers created on the other side as defined, then dropped where the reverse stream applies.
//! * [`park_triggers`] and [`unpark_triggers`] (`parked`) — MySQL/MariaDB blue of a cutover to another
//!   engine: its triggers saved and dropped for the rollback window, created again by the rollback.
//! * [`PgBouncerAdmin`] (`pgbouncer`) and [`point_database`] (`pgbouncer_config`) — the pgbouncer
//!   pieces the fence and the switch are made of.
//!
//! Every operation is idempotent, so a cutover resumed after a crash can repeat the step it was
//! in. All errors are [`CutoverError`], whose messages name the thing and the fix and never show a
//! password. Sessions on blue and green are the caller's (`tokio_postgres::Client`); only the
//! pgbouncer admin console is connected to here, since it needs a session without settings.

mod command;
mod counters;
mod error;
mod fence;
mod haproxy;
mod hold;
mod mysql_fence;
mod parked;
mod pgbouncer;
mod pgbouncer_config;
mod sequences;
mod session;
mod share;
mod switch;
mod triggers;

pub use counters::{auto_increments, sync_counters, CounterKind, CounterSync};
pub use error::{CutoverError, Side};
pub use fence::{EndedSession, FenceReport, WriteFence, OWN_APPLICATION_PREFIX};
pub use hold::{HeldSession, SessionHold};
pub use mysql_fence::{fence_grant, fence_privileged, running_replication, MySqlFenceReport, ReadOnlyFence};
pub use parked::{park as park_triggers, parked as parked_triggers, unpark as unpark_triggers};
pub use pgbouncer::{PgBouncerAdmin, PoolState, PoolerDatabase};
pub use pgbouncer_config::{point_database, Endpoint, EntryRewrite};
pub use sequences::{next_values, sync_sequences, sync_sequences_ahead, SequencePlan, SequenceState, SequenceSync};
pub use share::{GreenSeen, ReadSplit};
pub use switch::{BlueGreen, ClientsMoved, SwitchReport, TrafficSwitch};
pub use triggers::{
    definitions as trigger_definitions, drop_handed_over as drop_handed_over_triggers, hand_over as hand_over_triggers, try_create as try_create_triggers,
    Handover as TriggerHandover, TriggerDefinition,
};
