//! The run of one cutover or rollback ([`Controller::run`]): the journal's stretches, one method
//! each — the checks before the fence ([`Controller::before_fence`]), the fence and the proof
//! ([`Controller::fence_and_prove`]), and the switch ([`Controller::switch_over`]); a rehearsal ends
//! after the proof instead ([`Controller::end_rehearsal`]).
//!
//! Guarantees (see the module above): every step is journaled before it acts; before the fence a
//! failure changes nothing (`Failed`); from the fence to the switch a failure or a pause about to
//! exceed `--max-pause` undoes the fence (`Undone`); from `Switching` on a failure is completed by
//! the next `turnout run`, never undone.

use super::{
    build_switch, check_switch, lock, pause_exceeded, refuse_no_inverse, switch_to, Controller, Direction, Journal, PauseTimeline, Request, Retry, ReverseArm,
    Step, CLIENTS_MOVED_CAP,
};
use crate::error::{Error, Lifecycle};
use crate::source::contract::marker::Marker;
use crate::source::contract::procedure::Procedure;
use crate::source::Names;
use crate::status::foreign::Side;
use crate::status::Phase;
use std::time::{Duration, Instant};
use turnout_cutover::{ClientsMoved, TrafficSwitch};
use turnout_decoders::Position;

/// The write pause under way: when the fence went up, its phases so far, and when it must end.
pub(super) struct Pause {
    pub fenced_at: Instant,
    pub phases: PauseTimeline,
    pub deadline: Instant,
}

/// What the proof found ([`Controller::prove`]).
pub(super) struct Proof {
    /// The sentinel's commit on the fenced side.
    pub sentinel: Position,
    /// The other side's durable position that proved it.
    pub proved_at: Position,
    /// Everything the fenced side committed, where it knows it.
    pub fenced: Option<Position>,
    /// The counters' line, and how many were topped up.
    pub counters: (String, usize),
}

/// What is ready before the fence.
struct Ready {
    /// The watch's marker, when the watch for writes that are not turnout's gates the cutover.
    marker: Option<Box<dyn Marker>>,
    /// The consumers carried over, prepared.
    handover: Option<crate::handover::Session>,
}

impl Controller {
    pub(super) async fn run<F: crate::source::family::Family>(&self, id: &str, request: &Request) -> Result<(), Error> {
        let ran = self.run_with(self.connect::<F>().await?, id, request).await;
        // A session held for a run that ended before its fence (or whose switch shut it) ends here.
        self.end_hold().await;
        ran
    }

    async fn run_with<P: Procedure>(&self, mut procedure: P, id: &str, request: &Request) -> Result<(), Error> {
        let switch = build_switch(&self.config)?;
        let mut journal = Journal {
            id: id.to_owned(),
            direction: self.direction,
            step: Step::Waiting,
            fence: procedure.fence_kind().word().into(),
            switch: switch.kind().into(),
            message: None,
            reverse: None,
            fleet: None,
            hold: None,
        };
        // A hold an earlier run left journaled and not given back is given back before this run
        // reads the server's limit again (and before its journal entry replaces that one).
        self.give_back_earlier_hold().await?;
        self.journal(&mut journal, Step::Waiting, None)?;
        // A record an earlier attempt left (one undone after its pause) is superseded by this one.
        if !request.rehearse {
            self.state.clear_handover(self.direction)?;
        }
        let Ready { mut marker, mut handover } = self.before_fence(&mut procedure, &mut journal, &switch, request).await?;
        // One pair of a fleet: its etcd reached before the fence, which goes up once every pair is ready.
        let mut pair = match &request.fleet {
            Some(ticket) => match self.fleet_join(&procedure, &mut journal, ticket, request).await {
                Ok(pair) => Some(pair),
                Err(e) => return Err(self.fail(&mut journal, Error::during("joining the fleet's cutover")(e))),
            },
            None => None,
        };
        let pause = match self.fence_and_prove(&mut procedure, &mut journal, (marker.as_mut(), handover.as_mut(), pair.as_mut()), id, request).await {
            Ok(pause) => pause,
            Err(e) => {
                // The others need not wait out their holds for a pair that will not vote.
                if let Some(pair) = pair.as_mut() {
                    self.fleet_abandon(pair, &e).await;
                }
                return Err(e);
            }
        };
        if request.rehearse {
            return self.end_rehearsal(&mut procedure, &mut journal, pause.phases, pause.fenced_at, request).await;
        }
        match pair {
            None => self.switch_over(&mut procedure, &mut journal, &switch, marker.as_mut(), pause).await,
            // Fenced and proven: the fleet decides whether this pair switches.
            Some(mut pair) => self.fleet_finish(&mut procedure, &mut journal, (&switch, marker.as_mut()), pause, &mut pair, (id, request)).await,
        }
    }

    /// `Waiting`: everything checked and prepared that can be before writes pause — the pre-checks,
    /// lag under the threshold, the verify and rogue-write gates, the fence and switch ready, the
    /// counters moved ahead, the consumers carried over prepared on the other side. Changes nothing a
    /// failure would have to undo. Returns the marker of
    /// the watch for writes that are not turnout's, when one gates the cutover.
    async fn before_fence<P: Procedure>(&self, procedure: &mut P, journal: &mut Journal, switch: &TrafficSwitch, request: &Request) -> Result<Ready, Error> {
        match self.get_ready(procedure, switch, request).await {
            Ok(ready) => Ok(ready),
            Err(reason) => Err(self.fail(journal, reason)),
        }
    }

    /// [`Self::before_fence`]'s checks, in order; the first that fails is the cutover's failure.
    async fn get_ready<P: Procedure>(&self, procedure: &mut P, switch: &TrafficSwitch, request: &Request) -> Result<Ready, Error> {
        if self.direction == Direction::Reverse {
            refuse_no_inverse(switch)?;
        }
        // Before the fence every step changes nothing or is idempotent: a transient failure is retried.
        let mut retry = Retry::default();
        let preflight = retried!(retry, self, "the pre-checks", procedure.preflight().await);
        lock(&self.record).inventory = procedure.inventory();
        lock(&self.record).type_map = procedure.type_map();
        for w in preflight? {
            self.say(format!("WARNING: {w}"));
            if request.rehearse {
                lock(&self.record).findings.push(w);
            }
        }
        if request.rehearse && procedure.fence_kind() == crate::config::Fence::None {
            return Err(Lifecycle::NothingToRehearse.into());
        }
        let sides = procedure.identify().await;
        lock(&self.record).sides = Some(sides);
        let threshold = Duration::from_millis(request.when_lag_ms);
        self.say(format!("waiting for the snapshot to finish and lag to stay under {} ms (up to {} s)", request.when_lag_ms, request.timeout_ms / 1000));
        self.wait_for_lag(threshold, Duration::from_millis(request.timeout_ms)).await?;
        // After the wait: whatever the application defined on the fenced side meanwhile is carried.
        self.settle_definitions(procedure, &mut retry).await?;
        self.verify_gate(request).await?;
        let marker = self.rogue_gate_before().await?;
        // Checked (and console sessions opened) before writes pause.
        retried!(retry, self, "checking the fence", procedure.check_fence().await).map_err(Error::during("the fence is not ready"))?;
        if let Some(line) = check_switch(switch, &self.config, self.direction, request).await.map_err(Error::during("the switch is not ready"))? {
            self.say(line);
        }
        self.open_hold().await?;
        // Counters go ahead before writes pause; inside the pause one read checks them.
        let counters = retried!(retry, self, "moving the counters ahead", procedure.counters_ahead().await)?;
        lock(&self.record).counters.push(counters.clone());
        self.say(counters);
        // What would block or slow the real one, read as late as possible before the fence.
        if request.rehearse {
            for finding in procedure.findings().await {
                self.say(format!("FINDING: {finding}"));
                lock(&self.record).findings.push(finding);
            }
        }
        // The consumers carried over: their slots made on green and their reading of blue checked.
        let handover =
            crate::handover::Session::prepare(&self.config, self.direction, &self.state).await.map_err(Error::during("the consumers cannot be handed over"))?;
        if let Some(h) = &handover {
            self.say(format!("consumers to hand over to {}, ready: {}", self.direction.ends().1, h.consumers().join(", ")));
        }
        // The window may have ended since the rollback began.
        if self.direction == Direction::Reverse {
            self.rollback_allowed()?;
        }
        // Defined again while the gates and counters ran: settled again before writes pause.
        self.definitions_still_settled(procedure, &mut retry).await?;
        Ok(Ready { marker, handover })
    }

    /// Makes the other side's definitions the fenced side's (where the family settles them),
    /// saying and recording what it did.
    async fn settle_definitions<P: Procedure>(&self, procedure: &mut P, retry: &mut Retry) -> Result<(), Error> {
        if let Some(line) = retried!(retry, self, "settling the definitions", procedure.settle_definitions(true).await)? {
            lock(&self.record).definitions.push(line.clone());
            self.say(line);
        }
        Ok(())
    }

    /// Just before the fence: settles the definitions again while the fenced side's changed since the
    /// last settling, a few times at most (a schema migration running on the fenced side settles
    /// once it is done).
    async fn definitions_still_settled<P: Procedure>(&self, procedure: &mut P, retry: &mut Retry) -> Result<(), Error> {
        const AGAIN: usize = 3;
        for attempt in 0..=AGAIN {
            match procedure.definitions_unchanged(" before the fence").await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < AGAIN && matches!(e, Error::Refused(_)) => {
                    self.say(format!("{e}; settling them again"));
                    self.settle_definitions(procedure, retry).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `Fencing` → `SequencesSynced` → `SentinelApplied`: arms the stream the switch hands off to,
    /// fences the side writes leave, writes the sentinel and waits until the other side durably
    /// applied it (and everything the fenced side committed), reading the final counters meanwhile.
    /// Any failure, or the pause about to exceed `--max-pause`, undoes the fence.
    async fn fence_and_prove<P: Procedure>(
        &self,
        procedure: &mut P,
        journal: &mut Journal,
        (marker, handover, fleet): (Option<&mut Box<dyn Marker>>, Option<&mut crate::handover::Session>, Option<&mut super::fleet::Pair>),
        id: &str,
        request: &Request,
    ) -> Result<Pause, Error> {
        let (from, to) = self.direction.ends();
        // The reverse stream, armed before writes pause: its slot's consistent point on green is the
        // hand-off position. Nothing commits on green for the application before the switch, and
        // whatever turnout's forward apply commits after that point carries its origin and never goes
        // back to blue. Journaled first: a crash from here on is undone (and what was made dropped) on
        // restart; the position is in every journal entry after. So is the limit of the server whose
        // sessions are held, lowered just before the fence.
        if let Err(e) = self.hold_still_open().await {
            return Err(self.fail(journal, e));
        }
        journal.hold = self.hold_slot();
        self.journal(journal, Step::Fencing, None)?;
        if !procedure.arms_reverse_after_proof() {
            if let Err(e) = self.arm_reverse(procedure, journal).await {
                return Err(self.undo(procedure, journal, e).await);
            }
        }
        // One pair of a fleet fences with the others: once every pair is ready this close to its fence.
        if let Some(pair) = fleet {
            if let Err(e) = self.fleet_ready(pair, id, request).await {
                return Err(self.undo(procedure, journal, e).await);
            }
        }
        // New sessions queue in haproxy from here until the switch (or the undo) lets them through.
        if let Err(e) = self.take_hold().await {
            return Err(self.undo(procedure, journal, e).await);
        }
        let pause_budget = Duration::from_millis(request.max_pause_ms);
        let fenced_at = Instant::now();
        let mut phases = PauseTimeline::new(fenced_at);
        match procedure.fence(pause_budget).await {
            Ok(line) => self.say(line),
            Err(e) => return Err(self.undo(procedure, journal, Error::during("fencing failed")(e)).await),
        }
        phases.mark("fence");
        let deadline = fenced_at + pause_budget;
        let Proof { sentinel, proved_at, fenced, counters: (line, topped_up) } = match self.prove(procedure, id, deadline, request, &mut phases).await {
            Ok(proof) => proof,
            Err(reason) => return Err(self.undo(procedure, journal, reason).await),
        };
        self.record_counters(line, topped_up, request);
        self.journal(journal, Step::SequencesSynced, None)?;
        phases.mark(if to == turnout_decoders::Side::Green { "counters and green applied" } else { "counters and blue applied" });
        self.say(format!("{to} applied the sentinel (commit {sentinel}) — every write committed on {from} before the fence is on {to}"));
        {
            let mut record = lock(&self.record);
            record.sentinel = Some(sentinel.to_string());
            record.fenced = fenced.as_ref().map(ToString::to_string);
            record.applied = Some(proved_at.to_string());
        }
        self.note_sentinel(journal, &sentinel);
        self.journal(journal, Step::SentinelApplied, Some(format!("sentinel {sentinel}")))?;
        let pause = Pause { fenced_at, phases, deadline };
        match self.after_proof(procedure, journal, (marker, handover), &sentinel, id, request, pause).await {
            Ok(pause) => Ok(pause),
            Err(reason) => Err(self.undo(procedure, journal, reason).await),
        }
    }

    /// Keeps the counters' line (and, in a rehearsal, how many had to be topped up) for the
    /// certificate, and says it.
    fn record_counters(&self, line: String, topped_up: usize, request: &Request) {
        let from = self.direction.ends().0;
        {
            let mut record = lock(&self.record);
            record.counters.push(line.clone());
            if request.rehearse && topped_up > 0 {
                record.findings.push(format!(
                    "{topped_up} counters on {from} moved past the margin set before the fence: the real cutover tops them up inside the write pause, one statement each"
                ));
            }
        }
        self.say(line);
    }

    /// Blue's watch in the window begins at the sentinel (see `ReverseArm::sentinel`).
    fn note_sentinel(&self, journal: &mut Journal, sentinel: &Position) {
        if let (Direction::Forward, Some(arm)) = (self.direction, journal.reverse.as_mut()) {
            arm.sentinel = Some(sentinel.clone());
        }
    }

    /// The steps inside the pause after the proof, each within the pause's budget: the reverse
    /// stream armed (where it is armed after the proof), green watched for writes that are not
    /// turnout's, the consumers handed over. An error is undone by the caller.
    #[allow(clippy::too_many_arguments)]
    async fn after_proof<P: Procedure>(
        &self,
        procedure: &mut P,
        journal: &mut Journal,
        (marker, handover): (Option<&mut Box<dyn Marker>>, Option<&mut crate::handover::Session>),
        sentinel: &Position,
        id: &str,
        request: &Request,
        mut pause: Pause,
    ) -> Result<Pause, Error> {
        let deadline = pause.deadline;
        // The proof holds for the definitions settled before the fence only if the fenced side
        // defined nothing since.
        within(deadline, request, procedure.definitions_unchanged(" inside the write pause")).await?;
        pause.phases.mark("definitions unchanged");
        if procedure.arms_reverse_after_proof() && self.reverse_names().is_some() {
            within(deadline, request, self.arm_reverse(procedure, journal)).await?;
            self.note_sentinel(journal, sentinel);
            pause.phases.mark("reverse armed");
        }
        if let Some(watched) = self.rogue_gate_in_pause(marker, deadline).await {
            watched?;
            pause.phases.mark("green watched");
        }
        if let Some(handover) = handover {
            let fenced = procedure.fenced_position();
            within(deadline, request, self.hand_over(handover, (sentinel, fenced.as_ref()), id, request.rehearse)).await?;
            pause.phases.mark("consumers handed over");
        }
        if Instant::now() >= deadline {
            return Err(pause_exceeded(request));
        }
        Ok(pause)
    }

    /// With the fence up: writes the sentinel `id` on the fenced side and waits until the other side
    /// durably applied it (and, where the fenced side knows it, everything it committed), reading and
    /// topping up the counters at the same time. Undoes nothing: the caller does, or (after a fleet's
    /// commit) cannot.
    pub(super) async fn prove<P: Procedure>(
        &self,
        procedure: &mut P,
        id: &str,
        deadline: Instant,
        request: &Request,
        phases: &mut PauseTimeline,
    ) -> Result<Proof, Error> {
        let from = self.direction.ends().0;
        // Sentinel: written after the fence, so every write acknowledged before it precedes it.
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.write_sentinel(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::during(format!("writing the sentinel on {from} failed"))(e)),
            Err(_) => return Err(Lifecycle::SentinelSlow { from }.into()),
        }
        phases.mark("sentinel");
        // The fenced side's counters are final: they are read and checked while the other side
        // applies the sentinel, at the same time, not after.
        let fenced = procedure.fenced_position();
        let (counters, sentinel) = tokio::join!(
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), procedure.top_up()),
            self.sentinel_applied(id, fenced.as_ref(), deadline)
        );
        // The sentinel's failure first: it says why (an account that wrote after it), where the
        // counters' at the same deadline would only say the pause ran out.
        let (sentinel, proved_at) = sentinel?;
        let counters = match counters {
            Ok(result) => result?,
            Err(_) => return Err(pause_exceeded(request)),
        };
        Ok(Proof { sentinel, proved_at, fenced, counters })
    }

    /// Inside the pause, after the proof: the carried consumers' places on the other side
    /// ([`crate::handover`]), kept for the certificate and — unless rehearsing — in the state store,
    /// unsynced: the switch's journal entry, synced, makes it durable before traffic moves.
    async fn hand_over(
        &self,
        handover: &mut crate::handover::Session,
        (sentinel, fenced): (&Position, Option<&Position>),
        id: &str,
        rehearse: bool,
    ) -> Result<(), Error> {
        let handed =
            handover.hand_off(Some(sentinel.to_string()), fenced.map(ToString::to_string)).await.map_err(Error::during("handing the consumers over failed"))?;
        if !rehearse {
            let record = crate::handover::Record { cutover: id.to_owned(), direction: self.direction, consumers: handed.clone(), settled: false };
            self.state.put_handover(self.direction, &record, false).map_err(Error::during("keeping the hand-over failed"))?;
        }
        lock(&self.record).handover = handed;
        Ok(())
    }

    /// `Switching` → `Done`: the other side has everything; traffic moves to it, and a failure from
    /// here on is completed by the next `turnout run`, never undone.
    pub(super) async fn switch_over<P: Procedure>(
        &self,
        procedure: &mut P,
        journal: &mut Journal,
        switch: &TrafficSwitch,
        marker: Option<&mut Box<dyn Marker>>,
        pause: Pause,
    ) -> Result<(), Error> {
        let (from, to) = self.direction.ends();
        let Pause { fenced_at, mut phases, deadline } = pause;
        // A rollback that armed the next generation marks where blue's watch stops counting.
        let closing = match (self.direction, marker, &journal.reverse) {
            (Direction::Reverse, Some(marker), Some(_)) => {
                let mark = self.mark_closing(marker, deadline).await;
                phases.mark("blue marked");
                mark
            }
            _ => None,
        };
        // Switch. From here on a failure is completed, not undone: the other side has everything.
        self.journal(journal, Step::Switching, None)?;
        // The side that takes the application's writes from here on: they are not foreign there.
        crate::watch::close(&self.status, if self.direction == Direction::Forward { Side::Green } else { Side::Blue }, closing);
        phases.mark("journal");
        let completed = format!(
            "switching traffic to {to} failed after {to} was proven complete; {from} stays fenced. Fix the cause below and restart \
             `turnout run` — it completes the switch from the journal"
        );
        if let Some(line) = procedure.open_green().await.map_err(Error::during(completed.clone()))? {
            self.say(line);
        }
        phases.mark(if to == turnout_decoders::Side::Green { "green opened" } else { "blue opened" });
        let report = switch_to(switch, &self.config, self.direction).await.map_err(Error::during(completed))?;
        phases.mark("switch");
        let pause = fenced_at.elapsed();
        // The queue went to the other side with the switch: blue's limit back, after the pause.
        self.give_back_hold(journal).await;
        self.say(format!("switched traffic to {to} ({}): {}", switch.kind(), report.summary));
        let summary = format!("{} complete: write pause {} ms ({})", self.direction.what(), pause.as_millis(), phases);
        self.record_pause(&phases, pause);
        self.journal(journal, Step::Done, Some(summary.clone()))?;
        // Reads follow the writes (a read canary's split, when configured).
        self.channels.reads_follow.notify_one();
        // The clients the fence held reconnect now (pgbouncer logs in to the other side for them):
        // this direction's teardown and the next stream's connections wait until they have, so the
        // two do not compete for the machine. Bounded; the next stream loses nothing by waiting.
        match switch.clients_moved(CLIENTS_MOVED_CAP).await {
            ClientsMoved::Moved(took) => self.say(format!("every client the fence held had a connection to {to} {} ms after the switch", took.as_millis())),
            ClientsMoved::Unstuck { took, retry, restored } => self.say(format!(
                "pgbouncer held its clients behind a login cut by the fence or the reload (server_login_retry = {retry} s): set to 0 until \
                 every client had a connection to {to}, {} ms after the switch, then {}",
                took.as_millis(),
                if restored { format!("back to {retry}") } else { format!("NOT back to {retry} (see the log): set it by hand") }
            )),
            ClientsMoved::StillWaiting => self.say(format!(
                "pgbouncer still held clients waiting for a connection to {to} {} s after the switch (a full pool?); going on",
                CLIENTS_MOVED_CAP.as_secs()
            )),
            ClientsMoved::Unobserved => {}
        }
        // This direction's apply stops: the other side now takes writes (and, after a cutover, the
        // sidecar finds the reverse stream in the journal written just before).
        self.stop();
        lock(&self.progress).write_pause_ms = Some(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.say(summary);
        Ok(())
    }

    /// Waits until streaming with lag under `threshold` for several consecutive samples.
    async fn wait_for_lag(&self, threshold: Duration, timeout: Duration) -> Result<(), Error> {
        const STABLE: u32 = 5;
        let deadline = Instant::now() + timeout;
        let mut under = 0;
        let mut last: Option<f64> = None;
        loop {
            let streaming = self.status.phase() == Phase::Streaming;
            let lag = self.status.lag_seconds();
            last = lag.or(last);
            under = if streaming && lag.is_some_and(|l| l < threshold.as_secs_f64()) { under + 1 } else { 0 };
            if under >= STABLE {
                self.say(format!("lag {:.3} s is under the threshold", lag.unwrap_or(0.0)));
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Lifecycle::LagNotUnder {
                    threshold_ms: threshold.as_millis(),
                    timeout_s: timeout.as_secs(),
                    last: last.map_or("unknown".into(), |l| format!("{l:.3} s")),
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The origin whose writes the stream this switch arms never passes on: the forward apply's on
    /// green (a cutover arming the reverse stream), or the reverse apply's on blue (a rollback arming
    /// the next generation): they came from the side that stream writes to.
    fn handed_from(&self) -> String {
        match self.direction {
            Direction::Forward => self.names().origin,
            Direction::Reverse => Names::reverse_of(&self.names()).origin,
        }
    }

    /// Arms the stream the switch hands off to, if configured, and records it in the journal
    /// (written by the next step). Returns the reason to undo on failure.
    async fn arm_reverse<P: Procedure>(&self, procedure: &mut P, journal: &mut Journal) -> Result<(), Error> {
        let Some(names) = self.reverse_names() else { return Ok(()) };
        match procedure.arm_reverse().await {
            Ok(Some((line, position))) => {
                self.say(line);
                journal.reverse = Some(ReverseArm {
                    names,
                    forward_origin: self.handed_from(),
                    position,
                    finished: false,
                    opened_at_us: crate::status::now_micros(),
                    ended: None,
                    sentinel: None,
                });
                Ok(())
            }
            Ok(None) => {
                if self.direction == Direction::Reverse {
                    self.say("WARNING: this rollback arms no stream blue → green (the log says why): replication stops after it");
                }
                Ok(())
            }
            // The way back is the emergency path: a rollback that cannot arm the next generation
            // still goes back, without it (what it made is dropped, each thing if it exists).
            Err(e) if self.direction == Direction::Reverse => {
                let dropped = match procedure.disarm_reverse().await {
                    Ok(_) => String::new(),
                    Err(d) => format!("; dropping what it made failed too ({d}): `turnout teardown` drops it"),
                };
                self.say(format!("WARNING: this rollback arms no stream blue → green: {e}{dropped}. The rollback goes on; replication stops after it"));
                Ok(())
            }
            Err(e) => Err(Error::during("preparing reverse replication failed")(e)),
        }
    }

    /// Waits until green durably applied the sentinel's transaction and, where the fenced side knows
    /// everything it committed (`fenced`), holds all of that too.
    /// Returns the sentinel's commit position and the durable position that proved it.
    async fn sentinel_applied(&self, id: &str, fenced: Option<&Position>, deadline: Instant) -> Result<(Position, Position), Error> {
        let (from, to) = self.direction.ends();
        // A position the proof cannot order is no proof: the fence is undone, naming both.
        let reached = |a: &Position, b: &Position| {
            a.reached(b).map_err(Error::during(format!("the proof ordering {to}'s applied position against {from}'s (the fence was undone)")))
        };
        loop {
            let moved = self.channels.sentinels.durable_moved();
            let applied = self.status.applied();
            if let (Some(commit), Some(applied)) = (self.channels.sentinels.commit(id), applied.as_ref()) {
                let holds_all = match fenced {
                    Some(f) => reached(applied, f)?,
                    None => true,
                };
                if reached(applied, &commit)? && holds_all {
                    return Ok((commit, applied.clone()));
                }
            }
            if Instant::now() >= deadline {
                let sentinel_in = match (self.channels.sentinels.commit(id), applied.as_ref()) {
                    (Some(commit), Some(applied)) => reached(applied, &commit)?,
                    _ => false,
                };
                if let (Some(fenced), Some(applied), true) = (fenced, &applied, sentinel_in) {
                    // The sentinel arrived but not everything the fenced side committed: a write after
                    // it (an account read_only does not stop) that green never received.
                    return Err(Lifecycle::WroteThroughFence { from, to, fenced: fenced.to_string(), applied: applied.to_string() }.into());
                }
                return Err(Lifecycle::SentinelNotApplied { to }.into());
            }
            // Woken by the apply the moment green's durable position moves; the timeout only bounds
            // the wait by the deadline (the sentinel is recorded before its transaction is durable).
            let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)), moved).await;
        }
    }

    /// Undoes the fence for `reason` and journals it; the error the run ends with (the journal's
    /// own failure first).
    pub(super) async fn undo<P: Procedure>(&self, procedure: &mut P, journal: &mut Journal, reason: Error) -> Error {
        match procedure.undo().await {
            Ok(line) => {
                self.say(line);
                self.give_back_hold(journal).await;
            }
            Err(e) => {
                // Sessions queued behind the hold would only wait out haproxy's timeout.
                self.give_back_hold(journal).await;
                let from = self.direction.ends().0;
                // What the operator must act on is the undo's failure; the journal keeps the same line.
                let failed = Error::during(format!(
                    "{reason}; UNDOING THE FENCE FAILED — {from} may still refuse writes; fix and restart `turnout run`, which retries the undo"
                ))(e);
                return match self.journal(journal, Step::Fencing, Some(failed.to_string())) {
                    Err(journaled) => journaled,
                    Ok(()) => failed,
                };
            }
        }
        match self.journal(journal, Step::Undone, Some(reason.to_string())) {
            Err(journaled) => journaled,
            Ok(()) => reason,
        }
    }

    /// Journals a run that ended before the fence, for `reason`; the error it ends with, as it came
    /// (its side, code and retry class kept).
    pub(super) fn fail(&self, journal: &mut Journal, reason: Error) -> Error {
        match self.journal(journal, Step::Failed, Some(reason.to_string())) {
            Err(journaled) => journaled,
            Ok(()) => reason,
        }
    }
}

/// `step`, or the pause's budget exceeded when it has not ended by `deadline`.
async fn within<T>(deadline: Instant, request: &Request, step: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), step).await.unwrap_or_else(|_| Err(pause_exceeded(request)))
}
