//! What turnout refuses by a decision of its own, typed by domain ([`Refusal`]): the cutover's
//! lifecycle (the journal, the window, the stream's phase, the pause's budget), the checks of both
//! servers before the fence, the fleet, the consumers' hand-over, the watch for writes that are not
//! turnout's, the read canary, the initial copy and blue's schema.
//!
//! Guarantees: each variant is turnout's own decision, names what the operator can do, and says
//! whether anything was changed (every refusal after the fence says the fence was undone). All are
//! fatal: retrying the same request changes nothing until the state it names does.

use turnout_decoders::Side;

/// A refusal turnout decides itself, by domain. Each converts into [`super::Error`] directly
/// (`Err(Lifecycle::NotStreaming.into())`, or `?`).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Lifecycle(#[from] Lifecycle),
    #[error(transparent)]
    Check(#[from] CutoverCheck),
    #[error(transparent)]
    Fleet(#[from] FleetRefusal),
    #[error(transparent)]
    Handover(#[from] HandoverRefusal),
    #[error(transparent)]
    Watch(#[from] WatchRefusal),
    #[error(transparent)]
    Canary(#[from] CanaryRefusal),
    #[error(transparent)]
    Copy(#[from] CopyRefusal),
    #[error(transparent)]
    Schema(#[from] SchemaRefusal),
    #[error(transparent)]
    Definitions(#[from] super::definitions::DefinitionRefusal),
}

/// `From<domain refusal> for Error`, through [`Refusal`].
macro_rules! refused_as_error {
    ($($domain:ident),*) => {
        $(impl From<$domain> for super::Error {
            fn from(refusal: $domain) -> Self {
                super::Error::Refused(Refusal::from(refusal))
            }
        })*
    };
}
use super::definitions::DefinitionRefusal;
refused_as_error!(Lifecycle, CutoverCheck, FleetRefusal, HandoverRefusal, WatchRefusal, CanaryRefusal, CopyRefusal, SchemaRefusal, DefinitionRefusal);

/// What a readiness endpoint answered before the fence, and what it should have.
#[derive(Debug)]
pub struct ReadyMismatch {
    pub from: Side,
    pub to: Side,
    /// The word it should answer now, with the field that names it.
    pub expected: String,
    /// The word that will say the application moved, with its field.
    pub then: String,
    /// What it answered (quoted), or why there was no answer.
    pub answer: String,
}

/// Why a cutover, rollback or rehearsal does not start, or stopped; or why the rollback window
/// cannot be ended or used.
#[derive(Debug, thiserror::Error)]
pub enum Lifecycle {
    /// Another run of the same direction is in progress.
    #[error("a {what} is already running")]
    Running { what: &'static str },
    /// A rollback armed the stream's next generation, which has not begun yet.
    #[error("the stream's next generation is beginning after the rollback; try again in a moment")]
    GenerationBeginning,
    /// The journal says this generation was already cut over.
    #[error("this stream was already cut over to green")]
    AlreadyCutOver,
    /// The journal says this generation was already rolled back.
    #[error("traffic was already rolled back to blue")]
    AlreadyRolledBack,
    /// A run failed to undo its fence; the restart settles it from the journal.
    #[error("{what} {id} was left unsettled ({step}: {message}); restart `turnout run`, which settles it from the journal, before starting another")]
    Unsettled { what: &'static str, id: String, step: String, message: String },
    /// The initial copy has not finished.
    #[error("replication is not streaming yet (the snapshot must finish first)")]
    NotStreaming,
    /// Lag never stayed under `--when-lag` within the timeout.
    #[error("lag did not stay under {threshold_ms} ms within {timeout_s} s (last: {last}); nothing was changed, blue keeps serving")]
    LagNotUnder { threshold_ms: u128, timeout_s: u64, last: String },
    /// The pause reached `--max-pause`.
    #[error("the write pause would exceed --max-pause {max_pause_ms} ms; the fence was undone")]
    PauseExceeded { max_pause_ms: u64 },
    /// Writing the sentinel under the fence did not finish within the pause's budget.
    #[error("writing the sentinel on {from} took longer than --max-pause")]
    SentinelSlow { from: Side },
    /// The other side did not apply the sentinel within the pause's budget.
    #[error("{to} did not apply the sentinel within --max-pause; the fence was undone")]
    SentinelNotApplied { to: Side },
    /// The sentinel arrived, but the fenced side committed more after it: a write through the fence.
    #[error(
        "{to} applied the sentinel but not everything {from} committed before super_read_only ({from}: {fenced}; {to} applied: \
         {applied}) — an account that read_only does not stop (CONNECTION_ADMIN, SUPER) wrote after the sentinel; the fence was \
         undone. Revoke those privileges from application accounts (turnout check names them)"
    )]
    WroteThroughFence { from: Side, to: Side, fenced: String, applied: String },
    /// A rehearsal with `cutover.fence = "none"`.
    #[error("a rehearsal needs a fence to rehearse (cutover.fence = \"none\"): with none, turnout cannot pause writes and lift the pause")]
    NothingToRehearse,
    /// A rehearsal could not lift its fence; the restart retries.
    #[error(
        "rehearsal: UNDOING THE FENCE FAILED: {cause} — {from} may still refuse writes; fix the cause and restart `turnout run`, \
         which retries the undo"
    )]
    RehearsalUndoFailed { from: Side, cause: String },
    /// A rehearsal asked at a terminal was not confirmed.
    #[error("not rehearsed: nothing was changed")]
    NotConfirmed,
    /// A rehearsal without `--yes` and no terminal to ask.
    #[error("a rehearsal pauses writes, and there is no terminal to ask: pass --yes to go on")]
    NoTerminal,
    /// A rollback with the command switch, which cannot move traffic back.
    #[error(
        "the command switch has no inverse, so turnout cannot move traffic back to blue; set cutover.command.back_argv to the \
         command that moves the application back, use cutover.switch = \"pgbouncer\" or \"haproxy\", or point the application at \
         blue yourself and run `turnout finish`"
    )]
    NoInverse,
    /// The application's readiness endpoint did not say it writes to the side traffic moves to.
    #[error(
        "the application did not answer '{word}' at cutover.command.ready_url within {waited_ms} ms (its last answer: {last}); \
         it may still write to {from}, which stays fenced. Check that every instance of the application moved to {to}, then \
         restart `turnout run` — it runs the switch command again and waits for the answer"
    )]
    NotReady { word: String, from: Side, to: Side, waited_ms: u128, last: String },
    /// Before the fence, the readiness endpoint does not say the application writes to the side
    /// traffic moves from: it could not tell turnout when the application has moved.
    #[error(
        "cutover.command.ready_url answers {answer} before the fence, not {expected}: it must say the application writes to {from} \
         now, so that {then} tells turnout it has moved to {to}. Nothing was fenced; point ready_url at the application's own \
         answer, or correct the words",
        answer = .0.answer, expected = .0.expected, then = .0.then, from = .0.from, to = .0.to
    )]
    NotReadyBefore(Box<ReadyMismatch>),
    /// `turnout run` after a rollback that armed no next generation.
    #[error(
        "traffic was rolled back to blue (rollback {id}: {message}); this stream no longer replicates (the rollback armed no stream \
         blue → green: cutover.iterate = false, or arming it failed or was refused, as its output said). Run `turnout teardown` to \
         drop what it left, then start over"
    )]
    RolledBack { id: String, message: String },
    /// `turnout run` after a cutover whose rollback window is over (or was never opened).
    #[error(
        "this stream was cut over to green (cutover {id}: {message}{window}); blue is no longer the source. Run `turnout teardown` \
         before replicating again"
    )]
    CutOver { id: String, message: String, window: String },
    /// A fleet committed while the sidecar was down and the fence did not survive: the proof no
    /// longer holds, and nothing may undo a committed fleet.
    #[error(
        "fleet {fleet:?} committed while this sidecar was down, and the fence on {from} is gone (a proxy or server restarted): \
         writes may have reached {from} after the proof, so turnout does not switch. Fence {from} again by hand (pgbouncer PAUSE, \
         SET GLOBAL read_only = ON), compare {from} and {to} (`turnout verify`), copy what differs, then switch traffic by hand; \
         the journal keeps this state"
    )]
    FenceLostAfterCommit { fleet: String, from: Side, to: Side },
    /// The verify gate refused the last live verify.
    #[error("{refusal}{}", .required.as_ref().map(|why| format!(" (the gate is required after the rollback, because {why})")).unwrap_or_default())]
    Gate { refusal: String, required: Option<String> },
    /// The last live verify began before the stream resumed from blue.
    #[error(
        "this cutover needs a live verify that began after the stream resumed from blue ({resumed_at}), {because}; the last one's \
         oldest snapshot is from {oldest}. Run `turnout verify --live` (with the sidecar streaming), repair what it finds, then cut over"
    )]
    VerifyTooOld { resumed_at: String, because: String, oldest: String },
    /// The cutover armed no reverse stream.
    #[error("the cutover armed no reverse stream (cutover.reverse = false): there is no way back to replay")]
    NoWayBack,
    /// No cutover to green completed.
    #[error("there is nothing to roll back: no cutover to green completed")]
    NothingToRollBack,
    /// The window's budget ran out; it is ending.
    #[error("the rollback window's budget is spent ({why}); it is ending, there is no way back to replay")]
    WindowSpent { why: String },
    /// The window ended on its own.
    #[error("the rollback window ended on its own: {why}; there is no way back to replay")]
    WindowEnded { why: String },
    /// `turnout finish` ended the window.
    #[error("`turnout finish` already ended the rollback window")]
    Finished,
    /// `turnout finish` while a rollback runs.
    #[error("a rollback is running; wait for it to end")]
    RollbackRunning,
    /// `turnout finish` while a rollback is left unsettled.
    #[error("rollback {id} was left unsettled ({step}); restart `turnout run`, which settles it, before ending the window")]
    RollbackUnsettled { id: String, step: String },
    /// `turnout finish` after a rollback that armed the next generation.
    #[error(
        "rollback {id} armed replication blue → green again (cutover.iterate): the stream goes on as its next generation, and the \
         window's objects go as it begins; there is no window to finish"
    )]
    Iterated { id: String },
    /// The window's budget ran out after it was already ended.
    #[error("the rollback window was already ended")]
    AlreadyEnded,
    /// `turnout finish` with no window open.
    #[error("there is no rollback window to finish: no cutover with a reverse stream completed")]
    NoWindow,
}

/// Why a fleet cutover (N pairs, one decision kept in etcd) does not start or does not go on.
/// Every refusal before the fence changed nothing; an abort undoes every pair's fence.
#[derive(Debug, thiserror::Error)]
pub enum FleetRefusal {
    /// `fleet rollback` with every pair on blue.
    #[error("no pair of fleet {fleet} is in its rollback window: every pair is on blue already (or its sidecar says so); nothing was changed")]
    NoneOnGreen { fleet: String },
    /// Nothing would hold writes while the fleet decides.
    #[error("a fleet cutover needs a fence to hold writes while the fleet decides (cutover.fence = \"none\"); nothing was changed")]
    NeedsFence,
    /// The ticket's names cannot be etcd key parts.
    #[error("the fleet ticket {ticket} is not usable: fleet, id and pair must be non-empty names without '/'; nothing was changed")]
    BadTicket { ticket: String },
    /// The sidecar has no etcd to keep the decision in.
    #[error(
        "this sidecar was asked to cut over as pair {pair:?} of fleet {fleet:?}, but its configuration has no [fleet.etcd]: add the \
         fleet's etcd endpoints to turnout.toml and restart `turnout run`; nothing was changed"
    )]
    NoEtcd { pair: String, fleet: String },
    /// A fleet cutover of this id was already started.
    #[error("the fleet cutover {prefix} already exists in etcd; start a new one")]
    Exists { prefix: String },
    /// The decision key is gone.
    #[error("the fleet's decision {key} is missing from etcd: was the fleet's key range deleted?")]
    DecisionMissing { key: String },
    /// The fleet's record does not name this pair.
    #[error("fleet cutover {id}'s record in etcd does not list pair {pair:?}; nothing was changed")]
    NotListed { id: String, pair: String },
    /// The fleet decided before this pair fenced.
    #[error("the fleet decided {decision} before the fence; nothing was changed")]
    DecidedEarly { decision: &'static str },
    /// The fleet's cutover has no decision key yet.
    #[error("fleet cutover {id} has no decision key in etcd; nothing was changed")]
    Undecided { id: String },
    /// Not every pair was ready in time.
    #[error("not every pair of fleet {fleet:?} was ready within {timeout_s} s; nothing was changed")]
    NotReady { fleet: String, timeout_s: u64 },
    /// Lag grew past `--when-lag` while the pairs got ready.
    #[error("lag grew to {lag} while waiting for every pair to be ready (--when-lag {when_lag_ms} ms); nothing was changed")]
    LagGrew { lag: String, when_lag_ms: u64 },
    /// The fleet decided abort after this pair fenced.
    #[error("fleet {fleet:?} decided abort: every pair undoes its fence; traffic stays where it was")]
    Aborted { fleet: String },
}

/// Why a CDC consumer's place on the side writes leave cannot be handed over to the side traffic
/// moves to (`[[handover]]`). Each is found before the fence, except a slot that does not stand at
/// the hand-off, which is found under it and undoes it.
#[derive(Debug, thiserror::Error)]
pub enum HandoverRefusal {
    /// `[[handover]]` names a slot the side does not have.
    #[error(
        "[[handover]] names slot {slot} but {side} has no logical slot of that name in this database; correct the name (turnout \
         check lists blue's consumers)"
    )]
    NoSuchSlot { slot: String, side: Side },
    /// MySQL family: without `PROCESS`, the processlist shows turnout its own sessions only, so no
    /// consumer could be found.
    #[error(
        "[[handover]] carries binlog readers of {side}, whose sessions turnout finds in the processlist, which shows another account's          sessions only with PROCESS: GRANT PROCESS ON *.* TO {account} on {side}"
    )]
    NoProcess { side: Side, account: String },
    /// `[[handover]]` names a publication the side writes leave does not have.
    #[error("[[handover]] names publication {name}, which {side} does not have; correct the name")]
    NoSuchPublication { name: String, side: Side },
    /// The two sides' publications of one name differ.
    #[error("publication {name} differs: {from} {on_from} — {to} {on_to}; make {to}'s the same (ALTER PUBLICATION) or drop it there for turnout to create")]
    PublicationDiffers { name: String, from: Side, to: Side, on_from: String, on_to: String },
    /// A publication with row filters or column lists, which turnout does not recreate.
    #[error(
        "publication {name} on {from} has row filters or column lists, which turnout does not recreate; create it on {to} with the \
         same definition"
    )]
    PublicationFiltered { name: String, from: Side, to: Side },
    /// The side traffic moves to has a slot of that name of another kind.
    #[error(
        "{side} already has a slot {slot} that is not a logical slot of plugin {plugin}{}; drop it there (pg_drop_replication_slot) \
         for the hand-over to make it", if *.two_phase { " with two_phase" } else { " without two_phase" }
    )]
    SlotOfAnotherKind { side: Side, slot: String, plugin: String, two_phase: bool },
    /// A consumer already reads the slot on the side traffic moves to.
    #[error(
        "{side}'s slot {slot} is being read now: a consumer reading there before the switch would read turnout's own apply as \
         changes (before a rollback: the consumer still reads {side}); stop it and try again"
    )]
    SlotInUse { side: Side, slot: String },
    /// The slot has no confirmed position.
    #[error("{side}'s slot {slot} has no confirmed position (not a logical slot, or not yet ready); its place cannot be handed over")]
    NoConfirmedPosition { side: Side, slot: String },
    /// The consumer's slot is gone.
    #[error("the consumer's slot {slot} is gone from {side}; its place cannot be handed over")]
    SlotGone { slot: String, side: Side },
    /// Before a rollback: the consumer has not read green up to the cutover's fence.
    #[error(
        "the consumer of slot {slot} has read {side} only up to {at}, not to the cutover's fence {fence}: moving its slot there to \
         the rollback's hand-off would skip {at}..{fence}; let it read that first, or leave it out of [[handover]]"
    )]
    BehindFence { slot: String, side: Side, at: String, fence: String },
    /// The consumer did not keep up within `handover.wait` (`on_lag = "refuse"`).
    #[error(
        "the consumer of slot {slot} has read {side}'s log up to {at}, not yet to {target} where it stood {wait_s} s ago; it must \
         keep up for its place to be handed over — start or speed up the consumer, raise handover.wait, or set on_lag = \"record\" to \
         cut over recording what it must still read from {side}"
    )]
    Behind { slot: String, side: Side, at: String, target: String, wait_s: u64 },
    /// A MySQL/MariaDB consumer was not sent the whole binlog within `handover.wait`.
    #[error(
        "the consumer {account} has not been sent {side}'s whole binlog within {wait_s} s (no session of it reads {side}, or it is \
         behind); it must keep up for its place to be handed over — start or speed up the consumer, raise handover.wait, or set \
         on_lag = \"record\" to cut over recording that it must still read {side}"
    )]
    BinlogBehind { account: String, side: Side, wait_s: u64 },
    /// Under the fence: a slot does not stand at the hand-off.
    #[error("the slot {slot} stands at {stands}, not at the hand-off {at}: its consumer would see turnout's apply again or miss writes")]
    NotAtHandOff { slot: String, stands: String, at: String },
}

/// Why the watch for writes that are not turnout's ([`crate::watch`]) refuses a cutover or `turnout
/// finish`, or cannot watch a side. Each names the writes or the server setting, and how to go on
/// without the watch where that is the operator's choice.
#[derive(Debug, thiserror::Error)]
pub enum WatchRefusal {
    /// Writes that are not turnout's wait to be acknowledged.
    #[error("{count} writes on {side} did not come from turnout: {writes}. {what}, then run `turnout rogue-writes --acknowledge`")]
    Outstanding { count: u64, side: Side, writes: String, what: &'static str },
    /// The operator acknowledged a count that is no longer the count seen.
    #[error(
        "{seen} writes on {side} that turnout did not make were seen, not the {listed} you listed: list them again (`turnout \
         rogue-writes`) and acknowledge what you reconciled"
    )]
    Relisted { seen: u64, side: Side, listed: u64 },
    /// The watch did not read up to a mark written just before.
    #[error(
        "the watch for writes on {side} that are not turnout's had read {side}'s log only to {at}, not to {mark}, in time{why}: it \
         cannot be shown that nothing else wrote there"
    )]
    NotCaughtUp { side: Side, at: String, mark: String, why: String },
    /// Green's watch is unavailable on its server.
    #[error("the watch for writes on green that are not turnout's is unavailable: {why}")]
    Unavailable { why: String },
    /// Green's watch has not begun to read.
    #[error("the watch for writes on green that are not turnout's is {state}{why}; the cutover waits for it to read")]
    NotReading { state: &'static str, why: String },
    /// Writing the mark took longer than the time left.
    #[error("writing the watch's mark on {side} took longer than the time left ({left_ms} ms)")]
    MarkSlow { side: Side, left_ms: u128 },
    /// No session for the mark in time.
    #[error("connecting to {side} for the watch's mark timed out")]
    ConnectSlow { side: Side },
    /// `turnout finish` could not show blue's watch read up to now.
    #[error("{cause}. Wait and try again, or set [watch] blue = false and restart `turnout run` to finish without the watch")]
    FinishUnproven {
        #[source]
        cause: Box<super::Error>,
    },
    /// Green's watch slot cannot be made.
    #[error("creating the watch slot {slot} on green: {cause}; green needs wal_level = logical and a free replication slot")]
    NoSlot { slot: String, cause: String },
    /// Blue's forward slot, where its watch reads in the rollback window, is gone.
    #[error(
        "the forward slot {slot} on blue is gone, so blue cannot be watched for writes in the rollback window; set [watch] blue = \
         false to run without the watch"
    )]
    ForwardSlotGone { slot: String },
    /// Green has no progress record of the forward stream, so blue's watch has no start.
    #[error(
        "green has no progress record of the forward stream {origin}, so where blue's binlog stops being what green applied is \
         unknown; blue cannot be watched in the rollback window (set [watch] blue = false to run without the watch)"
    )]
    NoProgressRecord { origin: String },
    /// A MySQL/MariaDB server setting or privilege the watch needs.
    #[error("{side} cannot be watched for writes that are not turnout's: {what}; {fix} (or set {off})")]
    Unwatchable { side: Side, what: String, fix: String, off: &'static str },
    /// The mark cannot be logged as a row event.
    #[error(
        "{side} logs in binlog_format {format}, and turnout's account may not log the watch's mark as a row event ({cause}): set \
         binlog_format = ROW on {side}, or GRANT BINLOG ADMIN ON *.* there"
    )]
    NoRowEvents { side: Side, format: String, cause: String },
    /// MariaDB logged no transaction for the mark.
    #[error(
        "{side}'s binlog shows no transaction for the watch's mark (@@last_gtid stayed '{before}'): it must log every write (log_bin \
         on, no binlog filter) to be watched"
    )]
    MarkNotLogged { side: Side, before: String },
    /// MySQL's executed GTID set did not grow with the mark.
    #[error(
        "{side}'s executed GTID set did not grow with the watch's mark: it must log every write with a GTID (log_bin on, gtid_mode \
         = ON, no binlog filter) to be watched"
    )]
    MarkWithoutGtid { side: Side },
}

/// Why `turnout canary` refuses a plan, or could not carry it out.
#[derive(Debug, thiserror::Error)]
pub enum CanaryRefusal {
    /// No `canary.split` is configured.
    #[error("no read canary is configured: set canary.split (haproxy, pgbouncer or command) and its section, then restart `turnout run`")]
    NotConfigured,
    /// A cutover or rollback moves traffic now.
    #[error("a cutover or rollback is running; ask the canary after it")]
    TrafficMoving,
    /// The writes are on green already.
    #[error("the cutover already moved the writes to green, and every read follows them")]
    WritesMoved,
    /// The shares asked for cannot be a plan.
    #[error("{0}")]
    BadPlan(String),
    /// Green does not stream from blue now.
    #[error("green takes reads only while it streams from blue (now: {direction} {phase}); wait for the initial copy to finish")]
    NotStreaming { direction: &'static str, phase: String },
    /// Green's probe fails before any read moves.
    #[error("green's probe fails, so green would trip at once: {cause}")]
    ProbeFails { cause: String },
    /// The split failed after the plan was taken; `done` says what happened before.
    #[error("{}", .done.join("; "))]
    SplitFailed { done: Vec<String> },
    /// Setting green's share back to 0 failed.
    #[error("setting green's share of reads to 0 failed: {cause}; the canary tries again at its next check")]
    EndFailed { cause: String },
    /// Green did not answer the canary's fence in time.
    #[error("no answer within {secs} s")]
    NoAnswer { secs: u64 },
}

/// Why the initial copy, or a table added to the selection, cannot start or cannot be trusted:
/// green's tables, turnout's own state, or a change the chunked copy cannot place. Nothing is
/// streamed past one of these.
#[derive(Debug, thiserror::Error)]
pub enum CopyRefusal {
    /// The state store holds a position of another log than the stream reads.
    #[error("a {log} stream cannot start at the non-{log} position {position}")]
    ForeignPosition { log: &'static str, position: String },
    /// Green already has a table the copy between two engines would create.
    #[error(
        "green already has {table}: the copy from another engine creates green's tables itself from the type map, so that no \
         value is taken under another type (a narrower scale or precision rounds without an error); drop it on green, or leave \
         it out (tables.exclude)"
    )]
    GreenTableExists { table: String },
    /// A table joined the selection of a composed stream after its copy.
    #[error(
        "the table selection now includes {tables}, which the copy to green did not copy; adding a table to a stream between \
         engines is not built: leave it out (tables.exclude), or start over (turnout teardown, then turnout run) to copy it"
    )]
    AddedAfterCopy { tables: String },
    /// A table joined the selection of a stream that began at a hand-off.
    #[error(
        "the table selection of the stream from the hand-off now includes {tables}, which its target never received; turnout cannot \
         add a table to a stream that began at a hand-off. Leave it out (tables.exclude); in the rollback window, end it (turnout \
         finish); after a rollback, start over (turnout teardown) to copy it"
    )]
    AddedAfterHandOff { tables: String },
    /// Blue has turnout's slot, but this state directory has no snapshot.
    #[error(
        "slot {slot} exists on blue but this state directory has no snapshot; another turnout may use it. Drop it with SELECT \
         pg_drop_replication_slot('{slot}') if it is stale"
    )]
    SlotWithoutSnapshot { slot: String },
    /// Green has some of blue's tables, not all.
    #[error("green has some of blue's tables but lacks {missing}; create them on green{how} or drop the others so turnout copies the whole schema")]
    GreenPartial { missing: String, how: &'static str },
    /// The schema copy could not create tables that refer to a table left out.
    #[error(
        "the schema copy could not create {tables} on green: its definition refers to a table that [tables] leaves out (see the \
         warnings above); select that table too, or create these tables on green yourself"
    )]
    RefersToLeftOut { tables: String },
    /// Green's table is not empty at the initial snapshot.
    #[error("green table {table} already has rows; the initial snapshot needs empty tables (TRUNCATE it on green)")]
    GreenHasRows { table: String },
    /// A table added to the selection holds rows on green turnout did not copy.
    #[error(
        "the table selection now includes {table}, and green's {table} already has rows turnout did not copy; TRUNCATE it on green so \
         turnout copies it from blue, or leave it out with tables.exclude"
    )]
    AddedHasRows { table: String },
    /// A table added to the selection again has other columns on green than on blue.
    #[error(
        "the table selection now includes {table} again, and its columns on green ({green}) differ from blue's ({blue}), changed \
         while it was left out; drop it on green so that turnout creates it from blue's definition, or make green's match"
    )]
    DefinitionsDiffer { table: String, blue: String, green: String },
    /// The counts of a table's copy disagree.
    #[error(
        "the copy of {name}{condition} does not add up: blue counts {counted} rows at the copy's snapshot, {rows} were read and green \
         took {written}; nothing is streamed until it does. Run turnout teardown and start again; if it happens again, report it"
    )]
    CountsDisagree { name: String, condition: String, counted: i64, rows: u64, written: u64 },
    /// Blue gained columns during the chunked copy that green lacks.
    #[error(
        "blue's {table} has column(s) {columns} that green lacks (added on blue while the chunked copy runs, and not yet carried by \
         the stream, which announces a table's columns with its next change); add them on green as on blue (ALTER TABLE … ADD \
         COLUMN), or write any row of {table} on blue, then start turnout again"
    )]
    ColumnsLacking { table: String, columns: String },
    /// A table added to the selection cannot be created on green from blue's definition.
    #[error("{cause}; create the table on green yourself (what it depends on, a type or a sequence, may be missing there)")]
    AddedNotCreated { cause: String },
    /// Blue's definition of a table does not carry over to green's family or version.
    #[error(
        "{cause}; blue's definition does not carry over from {families}: create the table on green yourself with an equivalent \
         definition, or change it on blue, then start turnout again"
    )]
    NotCarriedOver { cause: String, families: String },
    /// A change the chunked copy cannot place in its parts.
    #[error("the chunked copy of {table} splits it by {how}")]
    Unplaceable { table: String, how: String },
    /// An UPDATE into a copied part lacks unchanged TOASTed values.
    #[error(
        "an UPDATE moved a row of {table} into a part green already holds from one it does not yet hold, and blue did not send all \
         of its values (an unchanged TOASTed value); the chunked copy cannot rebuild the row. Run the copy again with snapshot.mode = \
         \"consistent\" (turnout teardown, then turnout run), or set REPLICA IDENTITY FULL on the table (the old row then carries \
         every value)"
    )]
    Unrebuildable { table: String },
}

/// Why a cutover or rollback does not fence: a check of the two servers before the fence (or, for
/// the way back, while arming it) found what would make the other side differ or the pause unsafe.
/// Nothing was changed by any of these, except where the variant says the fence was undone.
#[derive(Debug, thiserror::Error)]
pub enum CutoverCheck {
    /// The sentinel is a logical message, which PostgreSQL has from 14 on.
    #[error("cutover needs PostgreSQL 14 or newer on blue (the sentinel is a logical message)")]
    PgTooOld,
    /// A cutover with a way back across engines, where green could take a write that blue could not
    /// take back and no guard on green keeps out.
    #[error(
        "cutover.reverse = true, but {count} thing(s) would let green take a write the stream back could not apply to blue, and a \
         rollback would then stop:\n{what}"
    )]
    Irreversible { count: usize, what: String },
    /// A rollback across engines while green's guard is not whole.
    #[error(
        "green's guard is not whole: {count} CHECK(s) that keep green to what blue can take back are missing, so green may hold values \
         the stream back wrote to blue differently or could not write:\n{what}\nAdd each (PostgreSQL checks green's rows as it adds it), \
         then roll back"
    )]
    GuardMissing { count: usize, what: String },
    /// A rollback across engines while green has tables the stream back does not carry.
    #[error(
        "green has {count} table(s) the stream back does not carry to blue (made on green after the cutover?): {tables}; a rollback would \
         leave their rows behind. Make them on blue and carry their rows yourself, then drop them on green — or stay on green (turnout finish)"
    )]
    NotCarriedBack { count: usize, tables: String },
    /// PostgreSQL: the two sides' schemas differ.
    #[error(
        "the schemas differ in {count} objects — after the switch the application would meet the difference (pg_dump --schema-only \
         of an object on one side gives the statement for the other): {differences}"
    )]
    PgSchemasDiffer { count: usize, differences: String },
    /// MySQL/MariaDB: the two sides' schemas differ.
    #[error("{to}'s schema differs from {from}'s in {count} objects — after the switch the application would meet the difference: {differences}")]
    SchemasDiffer { from: Side, to: Side, count: usize, differences: String },
    /// The way back needs `wal_level = logical` on the side traffic moves to.
    #[error("{to} has wal_level = {wal_level}; replicating {to} → {from} needs wal_level = logical on {to} (set it and restart {to}), or {off}")]
    NoLogicalWal { from: Side, to: Side, wal_level: String, off: String },
    /// The way back needs a role that may create replication slots.
    #[error("role {role} on {to} may not create replication slots; ALTER ROLE {role} REPLICATION on {to}, or {off}")]
    NoReplicationRole { role: String, to: Side, off: String },
    /// Prepared transactions would hold up the way back's slot.
    #[error("prepared transactions on {to} ({prepared}) would hold up creating slot {slot}; COMMIT PREPARED or ROLLBACK PREPARED them")]
    PreparedHoldSlot { to: Side, prepared: String, slot: String },
    /// The way back's slot waited too long for transactions holding an xid.
    #[error(
        "creating slot {slot} on {to} did not finish within {ms} ms: it waits for transactions there that hold an xid ({holders}); \
         end them and try again{why}"
    )]
    SlotSlow { slot: String, to: Side, ms: u128, holders: String, why: &'static str },
    /// A trigger that moves inside the pause cannot be created on the other side.
    #[error(
        "a trigger of {from} cannot be created on {to}: {cause}. Recreate it on {from} in a form and under settings {to} takes, or \
         drop it before the cutover and create it on {to} yourself afterwards"
    )]
    TriggerNotCreatable { from: Side, to: Side, cause: String },
    /// Moving the triggers inside the pause needs privileges turnout's account lacks.
    #[error(
        "{from} has {count} triggers that move to {to} inside the write pause, and turnout's account lacks {missing}; grant it (e.g. \
         GRANT {example} ON *.* TO turnout's account) and cut over again"
    )]
    TriggerGrants { from: Side, to: Side, count: usize, missing: String, example: &'static str },
    /// Events enabled on the side traffic moves to would fire during the apply.
    #[error(
        "{to} has events enabled before the cutover ({events}): they fire there while turnout applies {from}'s rows, which {from}'s \
         own events change too. Disable them on {to} (ALTER EVENT … DISABLE); the cutover enables them there inside the write pause"
    )]
    EventsEnabled { from: Side, to: Side, events: String },
    /// Sessions of turnout's own account that turnout did not open would write through the fence.
    #[error(
        "{from} has sessions of turnout's own account that turnout did not open: {sessions}. That account may write while {from} is \
         read-only (it writes the sentinel), so a client using it would keep writing through the fence and its writes after the \
         sentinel would be lost. Give the application an account of its own (and end these sessions), then cut over"
    )]
    ForeignSessions { from: Side, sessions: String },
    /// An Oracle MySQL reverse stream without a fence.
    #[error(
        "a reverse stream from an Oracle MySQL {to} needs cutover.fence = \"read-only\": with no fence turnout cannot know the \
         forward apply wrote its last change before the hand-off; set the read-only fence, or cutover.reverse = false"
    )]
    UnfencedWayBack { to: Side },
    /// Green cannot be the reverse stream's source.
    #[error("green cannot feed the reverse stream — {problems} (or set cutover.reverse = false to cut over without a way back)")]
    CannotFeedReverse { problems: String },
    /// The fenced side is itself a replica.
    #[error(
        "{from} is itself a replica ({channels} applying changes from another server): replication threads write through \
         read_only{}, so a write could land on {from} after the sentinel and never reach {to}. Stop replication into {from} (STOP \
         REPLICA / STOP ALL SLAVES) and move its writers to {from} before the cutover", if *.oracle { " and super_read_only" } else { "" }
    )]
    FencedIsReplica { from: Side, to: Side, channels: String, oracle: bool },
    /// turnout's account may not fence.
    #[error("turnout's account may not set read_only on {from}, write its sentinel under it or end other sessions; {grant}")]
    FencePrivileges { from: Side, grant: String },
    /// MariaDB: the apply's writes into the side armed cannot be told from the application's.
    #[error(
        "{to}'s binlog has no transaction in GTID domain {domain}, where turnout's apply into {to} marks its writes: the apply \
         session could not set gtid_domain_id when it connected, so its writes cannot be told from the application's. GRANT BINLOG \
         REPLAY ON *.* on {to} and restart `turnout run` (or set {off} = false)"
    )]
    UnmarkedApply { to: Side, domain: u32, off: &'static str },
    /// The fence's undo did not take.
    #[error("{from} is still read-only after the undo; SET GLOBAL read_only = OFF there by hand")]
    StillReadOnly { from: Side },
}

/// Why blue's schema cannot be replicated as it is, or cannot be created on green: nothing is
/// copied or streamed past one of these.
#[derive(Debug, thiserror::Error)]
pub enum SchemaRefusal {
    /// The selection is empty.
    #[error("blue has no user tables to replicate")]
    NoTables,
    /// Tables whose UPDATEs and DELETEs PostgreSQL cannot send with their key.
    #[error(
        "{count} table(s) have no primary key and no REPLICA IDENTITY FULL, so their UPDATEs and DELETEs cannot be replicated. Add \
         a primary key, or run on blue:\n{fixes}\nor leave them out with tables.skip_without_identity = true (or tables.exclude)"
    )]
    NoIdentity { count: usize, fixes: String },
    /// The configured pg_dump is older than blue.
    #[error(
        "source.pg_dump {path} is version {version}, older than blue ({min}); point source.pg_dump at a pg_dump {min} or newer \
         (Debian/Ubuntu: apt-get install postgresql-client-{min} from apt.postgresql.org)"
    )]
    PgDumpTooOld { path: String, version: u32, min: u32 },
    /// The configured pg_dump does not run.
    #[error("source.pg_dump {path} cannot be run; check the path and that it is executable")]
    PgDumpUnrunnable { path: String },
    /// No pg_dump new enough was found.
    #[error(
        "green lacks blue's tables and copying the schema needs a pg_dump of version {min} or newer ({seen}); install \
         postgresql-client-{min} or newer, or set source.pg_dump = \"/path/to/pg_dump\" in the config, or create the tables on green \
         yourself"
    )]
    NoPgDump { min: u32, seen: String },
    /// Green refused a statement of the schema copy.
    #[error("creating {what} on green{entry}: {cause}")]
    NotCreated { what: &'static str, entry: String, cause: String },
    /// MySQL/MariaDB: a stored routine of a kind turnout does not know.
    #[error("{side} has a stored routine {name} of a kind turnout does not know ({kind}); drop it or move it yourself")]
    UnknownRoutine { side: Side, name: String, kind: String },
    /// MySQL/MariaDB: the server gave no definition of a view, routine or event.
    #[error("{side} returned no definition for {kind} {name}: turnout's account needs the privileges to read it (SHOW VIEW, or the routine's)")]
    NoDefinition { side: Side, kind: &'static str, name: String },
    /// MySQL/MariaDB: an event whose definition cannot be made disabled.
    #[error("event {name} on blue has a definition turnout cannot read to create it disabled on green: {statement}")]
    UnreadableEvent { name: String, statement: String },
    /// MySQL/MariaDB: green refused blue's views, routines or events.
    #[error(
        "creating blue's views, routines and events on green failed: {errors}. Fix what the server names (a definer that does not \
         exist on green: CREATE USER there; a routine with binary logging: log_bin_trust_function_creators = 1 or a DETERMINISTIC / \
         READS SQL DATA declaration; creating another definer's object: SET_ANY_DEFINER or SET USER), then start turnout again"
    )]
    ProgramsNotCreated { errors: String },
    /// A schema one family defines differently from the other.
    #[error("blue's schema cannot be copied exactly from {families}: {refused}; turnout copies only what both families define alike")]
    NotPortable { families: String, refused: String },
    /// A column whose type the conversion between two engines does not carry.
    #[error(
        "column {column} of {table} is {blue_type} on blue: turnout does not carry {blue_type} from {from} to {to} yet; leave the \
         table out (tables.exclude = [\"{table}\"])"
    )]
    NotConverted { table: String, column: String, blue_type: String, from: &'static str, to: &'static str },
    /// A value the conversion between two engines would change.
    #[error("{at} holds {value} on blue, which {to} cannot hold exactly as {green_type}; {fix}")]
    NotExact { at: String, value: String, to: &'static str, green_type: String, fix: &'static str },
    /// Rows of a lossy column holding values the other engine cannot hold.
    #[error(
        "{rows} row(s) of {table} hold {what} in {column}, which green cannot hold: change those values on blue, or leave the table \
         out (tables.exclude = [\"{table}\"]) — or, for zero dates in a nullable column and NUL bytes in text, accept what they \
         become on green ([[convert.accept]] column = \"{table}.{column}\"); `turnout check` counts them"
    )]
    Affected { table: String, column: String, rows: u64, what: String },
    /// A change to a referred row whose foreign-key action blue applied otherwise than green would:
    /// green repeats exactly the actions blue does not log.
    #[error(
        "{row} on blue, and the {action} would differ on green: \
         {why}; the stream stopped before it. Make the referring rows equal on green by hand and start over (turnout teardown, \
         turnout run); on blue, write with foreign_key_checks = 1 and keep innodb_native_foreign_keys as it was at the copy"
    )]
    CascadeSkipped { row: String, action: String, why: &'static str },
    /// A foreign key whose action green repeats on its own, over a column blue compares by a
    /// collation that ignores case, accents or trailing spaces.
    #[error(
        "foreign key {constraint} of {table} acts on {column}, which blue compares by {collation} (case, accents or trailing spaces \
         ignored): blue's action, which its binlog does not carry, reaches referring rows green's repeat of it (byte for byte) would \
         miss; give the column a binary collation without padding (utf8mb4_nopad_bin) on blue, make the action RESTRICT or NO ACTION, \
         or leave the table out (tables.exclude = [\"{table}\"])"
    )]
    ActionByCollation { table: String, constraint: String, column: String, collation: String },
    /// A foreign key whose kind changed on blue since the copy set green up for the other.
    #[error(
        "foreign key {constraint} of {table}: green {green}, as blue's foreign keys were at the copy, but blue now {blue} (its \
         innodb_native_foreign_keys changed, or a server of another kind took its place); green would apply its actions twice or \
         not at all: set blue back as it was, or start over (turnout teardown, turnout run)"
    )]
    ActionsChangedKind { constraint: String, table: String, green: &'static str, blue: &'static str },
    /// Something replication between two engines needs that is not built yet.
    #[error("{what} from {from} to {to} is not built yet: {fix}")]
    NotBuilt { what: &'static str, from: &'static str, to: &'static str, fix: &'static str },
    /// A change blue's DDL made to a replicated table that the stream to another engine does not
    /// carry to green.
    #[error("blue's DDL on {table} ({change}) is not carried to green while streaming: {why}; {fix}")]
    DdlNotCarried { table: String, change: String, why: String, fix: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use turnout_decoders::ErrorClass;

    #[test]
    fn a_refusal_is_fatal_and_says_what_it_decided_with_its_fields() {
        let running = Error::from(Lifecycle::Running { what: "rollback" });
        assert_eq!(running.class(), ErrorClass::Fatal);
        assert_eq!(running.to_string(), "a rollback is already running");
        let gate = Lifecycle::Gate { refusal: "no live verify".into(), required: Some("blue was written".into()) };
        assert_eq!(gate.to_string(), "no live verify (the gate is required after the rollback, because blue was written)");
        assert_eq!(Lifecycle::Gate { refusal: "no live verify".into(), required: None }.to_string(), "no live verify");
        let replica = CutoverCheck::FencedIsReplica { from: Side::Blue, to: Side::Green, channels: "the default channel".into(), oracle: true };
        assert!(replica.to_string().starts_with("blue is itself a replica (the default channel applying"), "{replica}");
        assert!(replica.to_string().contains("read_only and super_read_only, so a write could land on blue"), "{replica}");
        let kind = HandoverRefusal::SlotOfAnotherKind { side: Side::Green, slot: "s".into(), plugin: "pgoutput".into(), two_phase: false };
        assert!(kind.to_string().contains("plugin pgoutput without two_phase; drop it there"), "{kind}");
        let asked = Lifecycle::NotConfirmed;
        assert_eq!(asked.to_string(), "not rehearsed: nothing was changed");
        let (reaction, advice) = Error::from(CopyRefusal::GreenHasRows { table: "public.t".into() }).reaction();
        assert_eq!((reaction, advice.as_str()), (crate::error::Reaction::Stop, "fix what the error names, then start turnout again"));
    }
}
