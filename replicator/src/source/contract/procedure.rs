//! What a source family does in a cutover and a rollback, behind [`Procedure`]; the steps around it
//! (lag gate, pause budget, proof, journal, switch) are the same for every family ([`crate::cutover`]).

use crate::error::Error;
use std::future::Future;
use std::time::Duration;
use turnout_decoders::Position;

/// What a server says it is (`version`) and what tells it from another at the same address
/// (`identity`), as [`Procedure::identify`] reads them for a certificate.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identity {
    pub version: String,
    pub identity: String,
}

/// What a cutover does on the source's side. Errors keep their side and retry class ([`Error::class`]);
/// their text is one line for the operator, naming the thing and the fix. Every step is idempotent (a cutover resumed after a crash repeats the step it was in).
pub(crate) trait Procedure: Send {
    /// The fence this procedure puts up (`none` for one that fences nothing).
    fn fence_kind(&self) -> crate::config::Fence;

    /// Refusals before anything changes (e.g. a server too old), and warnings to print (accounts the
    /// fence cannot stop).
    fn preflight(&mut self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// The fenced side's inventory as [`Procedure::preflight`] took it, for the certificate; `None`
    /// before the pre-checks ran.
    fn inventory(&self) -> Option<crate::source::contract::inventory::InventorySummary> {
        None
    }

    /// Between two engines: every replicated column's place in the type map (blue's type, green's,
    /// its class and why), one line each, as [`Procedure::preflight`] read it — for the certificate.
    /// Empty within one engine.
    fn type_map(&self) -> Vec<String> {
        Vec::new()
    }

    /// After the lag wait, before the fence: makes the definitions of the side traffic moves to
    /// equal to the fenced side's (with `apply`; without, only compares them and refuses naming each
    /// difference — a dry run), remembering the fenced side's mark for
    /// [`Procedure::definitions_unchanged`]. Returns the line to say and record; `None` where the
    /// family carries definitions another way (the MySQL family's binlog replays its DDL).
    fn settle_definitions(&mut self, apply: bool) -> impl Future<Output = Result<Option<String>, Error>> + Send {
        let _ = apply;
        async { Ok(None) }
    }

    /// Whether the fenced side's definitions are still those [`Procedure::settle_definitions`]
    /// settled: an error naming each object created, altered or dropped since. `when` says where it
    /// looked (" inside the write pause"; [`AFTER_COMMIT`] once a fleet committed, when only a
    /// definition changed may refuse: what can be made equal is, without refusing).
    fn definitions_unchanged(&mut self, when: &'static str) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = when;
        async { Ok(()) }
    }

    /// Checks, changing nothing, that the fence can be applied.
    fn check_fence(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Moves green's counters (sequences, AUTO_INCREMENT) ahead of blue's with a margin while writes
    /// still flow; returns what it did.
    fn counters_ahead(&mut self) -> impl Future<Output = Result<String, Error>> + Send;

    /// Fences writes on blue within `budget`; returns what it did.
    fn fence(&mut self, budget: Duration) -> impl Future<Output = Result<String, Error>> + Send;

    /// Commits the sentinel transaction carrying `id` on blue.
    fn write_sentinel(&mut self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Inside the pause: reads blue's final counters once and tops up green's; returns what it did
    /// and how many counters it had to move (they overtook the margin set before the fence).
    fn top_up(&mut self) -> impl Future<Output = Result<(String, usize), Error>> + Send;

    /// What both sides say they are, for the certificate: the fenced side's and the other's. Best
    /// effort: what cannot be read says why.
    fn identify(&mut self) -> impl Future<Output = (Identity, Identity)> + Send;

    /// For a rehearsal, changing nothing: what would block or slow the real cutover now — long
    /// transactions on the fenced side (the fence waits for them or ends them inside the pause),
    /// sessions on the other side whose locks or transactions hold up the apply. One line each,
    /// naming the session and the fix.
    fn findings(&mut self) -> impl Future<Output = Vec<String>> + Send;

    /// Makes green ready to take writes before traffic arrives; returns what it did, if anything.
    fn open_green(&mut self) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Lifts the fence (safe after a failed or partial fence); returns what it did.
    fn lift_fence(&mut self) -> impl Future<Output = Result<String, Error>> + Send;

    /// Whether the fence is in place now, read from the server (pgbouncer's paused entry, the
    /// database's or server's read-only setting); false without a fence. A switch after a long hold
    /// (one pair of a fleet) or a restart checks it: the proof only holds while the fence does.
    fn fenced(&mut self) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Drops whatever a reverse stream armed so far; returns what it did, if anything.
    fn disarm_reverse(&mut self) -> impl Future<Output = Result<Option<String>, Error>> + Send {
        async { Ok(None) }
    }

    /// Lifts the fence and drops whatever a reverse stream armed so far, that part best effort
    /// (what is left only names a position or holds WAL, and `turnout teardown` drops it too);
    /// returns what it did.
    fn undo(&mut self) -> impl Future<Output = Result<String, Error>> + Send {
        async {
            let mut line = self.lift_fence().await?;
            match self.disarm_reverse().await {
                Ok(Some(dropped)) => {
                    line.push_str("; ");
                    line.push_str(&dropped);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("dropping the reverse stream's objects after an undone cutover failed: {e}; `turnout teardown` drops them"),
            }
            Ok(line)
        }
    }

    /// Before the fence: arms the reverse stream after checking green can have it — PostgreSQL:
    /// green's publication, blue's replication origin, and green's slot, whose consistent point is the
    /// hand-off position (blue's origin is moved there): every write green accepts after the switch
    /// commits after it, and what the forward apply commits after it carries turnout's origin and is
    /// filtered out. Returns what it did and the hand-off position; `None` when this procedure arms
    /// no reverse stream.
    fn arm_reverse(&mut self) -> impl Future<Output = Result<Option<(String, Position)>, Error>> + Send {
        async { Ok(None) }
    }

    /// Whether [`Procedure::arm_reverse`] runs inside the pause, once green is proven complete,
    /// instead of before the fence. Oracle MySQL: green's binlog cannot tell turnout's forward writes
    /// from the application's (no GTID domains), so the hand-off position is taken when the forward
    /// apply has nothing left to write — after the proof, before the switch.
    fn arms_reverse_after_proof(&self) -> bool {
        false
    }

    /// Everything the fenced side committed, known once the fence is complete (Oracle MySQL: its
    /// `gtid_executed` read under `super_read_only`). The proof waits until green's applied position
    /// holds it as well as the sentinel; `None` where the sentinel alone proves it.
    fn fenced_position(&self) -> Option<Position> {
        None
    }
}

/// The `when` of [`Procedure::definitions_unchanged`] for a fleet pair whose fence was lost while it
/// held and was raised again after the fleet committed: the pair can no longer undo.
pub const AFTER_COMMIT: &str = " after the fence was applied again";
