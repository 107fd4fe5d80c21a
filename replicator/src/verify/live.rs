//! `turnout verify --live`: compares source and target **at one source position** while writes go
//! on, with the running sidecar holding its apply there for a moment. How the snapshots are taken and
//! chunks read is each server's [`Backend`]: [`crate::source::pg::live`] and
//! [`crate::source::mysql::live`].
//!
//! Work is done in rounds. Each round takes new snapshots at a new position, and its workers (each
//! with one source and one target session) compare chunks of `chunk_rows` keys in key order (cut by
//! value when the key is one integer column, see [`super::step`]) — a worker's source session
//! hashing up to two chunks ahead of its target session, so that neither waits for the other's hash
//! of the same chunk — until every table is done or the round's snapshots are older than `max_snapshot_age` (a
//! snapshot held open keeps blue's vacuum from removing rows). A chunk whose
//! count or hash sum differs is bisected — halves compared again, down to a few hundred rows — and
//! its rows compared column by column: each differing row is named by its key, with the columns that
//! differ (values only with `show_values`). Progress is saved as chunks complete (see
//! [`super::progress`]); a run that stopped resumes from it.

use super::progress::{self, DiffKind, RowDiff, Saved, TableState};
use super::step::Stepper;
use crate::config::Config;
use crate::error::{Error, Side};
use crate::status::Direction;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use turnout_decoders::schema::TableName;
use turnout_decoders::Position;

pub(crate) use crate::source::contract::compare::{Backend, HoldDriver};
pub use crate::source::contract::compare::{Key, Range, Rows, Shape, Snapshots, Sum, ARM_TTL, AT_TTL};

/// Chunks with at most this many rows on either side are compared row by row.
const LEAF_ROWS: i64 = 256;

/// What `turnout verify --live` was asked.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Only this table (`schema.table`).
    pub table: Option<String>,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Workers, each with one session on each side.
    pub parallel: usize,
    /// A round's snapshots are not used for new chunks once this old.
    pub max_snapshot_age: Duration,
    /// Longest wait for verify's temporary slot on blue (it waits for transactions holding an xid).
    pub slot_timeout: Duration,
    /// Start over even if an unfinished run's progress exists.
    pub restart: bool,
    /// Print the values of differing columns (else only their names).
    pub show_values: bool,
    /// How often to print progress to stderr (never when zero).
    pub progress_every: Duration,
    /// Compare at most this many source rows per second (paced after each chunk); none: as fast as
    /// the servers go.
    pub rows_per_second: Option<u64>,
    /// The sidecar's own continuous verify (`verify.continuous`): its progress is kept apart from
    /// `turnout verify --live`'s, so neither resumes the other's.
    pub background: bool,
    /// Only these tables, each whole or only some of its chunks (the continuous verify's re-check of
    /// what changed): never resumed, and its result is not kept (the caller merges it).
    pub recheck: Option<Recheck>,
}

/// What a re-check compares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recheck {
    /// Per table (`schema.table` quoted as the verify names it): whole or some chunks.
    pub plans: BTreeMap<String, Plan>,
    /// The tables the kept result has: any other replicated table is compared whole.
    pub known: std::collections::BTreeSet<String>,
}

/// How a re-check compares one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Whole,
    /// Only these ranges (in key order) of a table keyed by `column` alone; whole if the table's key
    /// is no longer that.
    Chunks {
        column: String,
        ranges: Vec<Range>,
    },
}

/// A live verify's result.
#[derive(Debug)]
pub struct LiveReport {
    pub tables: Vec<TableState>,
    /// The source position of each round.
    pub positions: Vec<String>,
    /// Which way the sidecar replicates: green is the source in the rollback window.
    pub direction: Direction,
    /// Whether this run resumed an earlier one.
    pub resumed: bool,
    /// Source rows compared by this run, and how long it took.
    pub rows: u64,
    pub elapsed: Duration,
    /// Per table, the columns only the target has (their values are its own: not compared).
    pub target_only_columns: Vec<(TableName, Vec<String>)>,
    /// The positions of this run's rounds (not those of a run it resumed), and when each round's
    /// snapshots were taken (all rounds).
    pub round_positions: Vec<Position>,
    pub rounds_at_us: Vec<i64>,
    /// The tables a re-check compared whole (planned so, or whose key changed).
    pub compared_whole: std::collections::BTreeSet<String>,
    /// The result this run kept for the gate (a whole run's), as saved and with its chunks.
    pub kept: Option<progress::Finished>,
}

/// The running sidecar, reached over its HTTP API.
struct Sidecar {
    listen: String,
    token: Option<String>,
    /// Names this verify's hold.
    holder: String,
}

impl HoldDriver for Sidecar {
    async fn step(&self, step: &str, position: Option<&Position>, ttl: Duration) -> Result<bool, Error> {
        let body = serde_json::to_string(&crate::http::HoldStep {
            step: step.to_owned(),
            position: position.map(crate::http::hold_position),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            holder: self.holder.clone(),
        })
        .unwrap_or_default();
        let answer =
            crate::http_client::request_within(&self.listen, "POST", "/verify/hold", Some(&body), self.token.as_deref(), ttl + Duration::from_secs(5)).await;
        match answer {
            Ok((200, _)) => Ok(true),
            Ok((409, body)) if body.contains("\"passed\":true") => Ok(false),
            Ok((code, body)) => Err(Error::Sidecar {
                url: format!("http://{}/verify/hold", self.listen),
                reason: format!("refused to hold its apply ({step}, HTTP {code}): {}", crate::http_client::error_of(&body)),
            }),
            Err(e) => Err(Error::Sidecar { url: format!("http://{}/verify/hold", self.listen), reason: format!("cannot be reached: {e}") }),
        }
    }
}

/// Runs a live verify (see the module doc).
pub async fn run(config: &Config, opts: &LiveOptions) -> Result<LiveReport, Error> {
    let started = Instant::now();
    let sidecar = Sidecar {
        listen: config.http.listen.clone(),
        token: config.cutover.token.as_ref().map(|t| t.expose().to_owned()),
        holder: format!("verify {} {}", std::process::id(), crate::status::now_micros()),
    };
    let status = crate::http_client::get(&sidecar.listen, "/status").await.map_err(|e| Error::Sidecar {
        url: format!("http://{}", sidecar.listen),
        reason: format!(
            "{e}; verify --live needs the running sidecar (`turnout run`), which holds its apply at the compared position. With writes \
                 stopped, `turnout verify` compares without it"
        ),
    })?;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
    let direction: Direction = serde_json::from_value(status["direction"].clone()).unwrap_or_default();
    let swapped = match direction {
        Direction::Forward => config.clone(),
        Direction::Reverse => crate::config::reversed(config),
    };
    // The pair's family is the forward configuration's (a composition's swapped one names another).
    crate::with_family!(config, F => live(&F::live(&swapped)?, &swapped, opts, &sidecar, direction, started).await)
}

async fn live<B: Backend>(
    backend: &B,
    config: &Config,
    opts: &LiveOptions,
    sidecar: &Sidecar,
    direction: Direction,
    started: Instant,
) -> Result<LiveReport, Error> {
    let mut tables = backend.tables(opts.table.as_deref()).await?;
    if let Some(only) = &opts.recheck {
        tables.retain(|t| only.plans.contains_key(&t.quoted()) || !only.known.contains(&t.quoted()));
    }
    let names: Vec<String> = tables.iter().map(TableName::quoted).collect();
    let (file, mut saved, resumed) = progress_of(config, opts, backend.source()?, &names)?;
    let mut plans: Vec<Option<VecDeque<Range>>> = names
        .iter()
        .map(|n| match opts.recheck.as_ref().and_then(|r| r.plans.get(n)) {
            Some(Plan::Chunks { ranges, .. }) => Some(ranges.iter().cloned().collect()),
            _ => None,
        })
        .collect();
    let mut run = RunLog::default();
    if resumed && !opts.background {
        let done = saved.tables.iter().filter(|t| t.done).count();
        eprintln!("verify: resuming the run in {}: {done} of {} tables done", file.display(), saved.tables.len());
    }
    let rows_done = Arc::new(AtomicU64::new(0));
    let todo: Vec<TableName> = tables.iter().zip(&saved.tables).filter(|(_, s)| !s.done).map(|(t, _)| t.clone()).collect();
    let estimate = backend.estimate_rows(&todo).await;
    let printer = (!opts.progress_every.is_zero()).then(|| tokio::spawn(print_progress(Arc::clone(&rows_done), estimate, opts.progress_every)));
    let outcome = rounds(backend, opts, sidecar, &tables, (&mut saved, &mut plans, &mut run), &file, Counted { rows: &rows_done, since: started }).await;
    if let Some(p) = printer {
        p.abort();
    }
    outcome?;
    // Finished: nothing to resume; a whole run's result is kept for the cutover's gate (one of a
    // single table does not replace it).
    let kept = keep(config, opts, &saved, direction)?;
    let _ = std::fs::remove_file(&file);
    let target_only_columns = backend.target_only_columns(&tables).await?;
    Ok(LiveReport {
        tables: saved.tables,
        positions: saved.positions,
        direction,
        resumed,
        rows: rows_done.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        target_only_columns,
        round_positions: run.positions,
        rounds_at_us: saved.rounds_at_us.clone(),
        kept,
        compared_whole: names.iter().zip(&plans).filter(|(n, p)| p.is_none() || run.unplanned.contains(*n)).map(|(n, _)| n.clone()).collect(),
    })
}

/// The run's progress file, the run to go on with, and whether it resumes one an earlier run left
/// (same source, chunk size and tables; never for a re-check or with `--restart`).
fn progress_of(config: &Config, opts: &LiveOptions, source: String, names: &[String]) -> Result<(std::path::PathBuf, Saved, bool), Error> {
    let file = match (&opts.recheck, opts.background) {
        (Some(_), _) => progress::recheck_path(&config.state.dir),
        (None, true) => progress::background_path(&config.state.dir),
        (None, false) => progress::path(&config.state.dir),
    };
    let fresh = Saved::new(source, opts.chunk_rows, names);
    let earlier = if opts.recheck.is_some() {
        // A re-check never resumes: whatever an earlier one left is gone.
        let _ = std::fs::remove_file(&file);
        None
    } else {
        Saved::load(&file)?
    };
    Ok(match earlier {
        Some(s) if !opts.restart && s.same_run(&fresh) => (file, s, true),
        _ => (file, fresh, false),
    })
}

/// A whole run's result, kept for the cutover's gate (one of a single table, or a re-check, does
/// not replace it).
fn keep(config: &Config, opts: &LiveOptions, saved: &Saved, direction: Direction) -> Result<Option<progress::Finished>, Error> {
    if opts.table.is_some() || opts.recheck.is_some() {
        return Ok(None);
    }
    let kept = progress::Finished {
        version: progress::FINISHED_VERSION,
        source: saved.source.clone(),
        target: crate::compared::address(config.target.url.expose()),
        direction,
        whole: true,
        tables: saved.tables.clone(),
        positions: saved.positions.clone(),
        rounds_at_us: saved.rounds_at_us.clone(),
        finished_at_us: crate::status::now_micros(),
        whole_run_finished_at_us: None,
    };
    kept.save(&config.state.dir)?;
    Ok(Some(kept))
}

/// What this run itself did: its rounds' positions, and the planned tables it compared whole (their
/// key changed).
#[derive(Default)]
struct RunLog {
    positions: Vec<Position>,
    unplanned: std::collections::BTreeSet<String>,
}

/// The rows compared so far, and since when (the pace's start).
struct Counted<'a> {
    rows: &'a Arc<AtomicU64>,
    since: Instant,
}

/// Rounds until every table is done.
async fn rounds<B: Backend>(
    backend: &B,
    opts: &LiveOptions,
    sidecar: &Sidecar,
    tables: &[TableName],
    (saved, plans, run): (&mut Saved, &mut Vec<Option<VecDeque<Range>>>, &mut RunLog),
    file: &std::path::Path,
    counted: Counted<'_>,
) -> Result<(), Error> {
    let Counted { rows: rows_done, since: started } = counted;
    let mut widths = Vec::new();
    while saved.tables.iter().any(|t| !t.done) {
        let snaps = backend.take(sidecar, opts.parallel.max(1), opts.slot_timeout).await?;
        tracing::info!(position = %snaps.position, "verify snapshots taken");
        run.positions.push(snaps.position.clone());
        saved.positions.push(snaps.position.to_string());
        saved.rounds_at_us.push(crate::status::now_micros() - i64::try_from(snaps.taken.elapsed().as_micros()).unwrap_or(0));
        let todo: Vec<TableName> = tables.iter().zip(&saved.tables).filter(|(_, s)| !s.done).map(|(t, _)| t.clone()).collect();
        let first = snaps.blue.first().ok_or_else(|| Error::Internal("verify took no snapshot".into()))?;
        let shapes = backend.shapes(first, &todo).await?;
        let shapes: BTreeMap<String, Shape> = shapes.into_iter().map(|s| (s.table.quoted(), s)).collect();
        unplan_changed_keys(opts, &shapes, saved, plans, run)?;
        let round = Round {
            backend,
            shapes,
            opts,
            deadline: snaps.taken + opts.max_snapshot_age,
            shared: tokio::sync::Mutex::new(Shared::new(std::mem::replace(saved, Saved::new(String::new(), 0, &[])), std::mem::take(plans), widths)),
            file,
            rows_done,
            pace: opts.rows_per_second.map(|rate| (started, rate.max(1))),
            hashed: AtomicU64::new(rows_done.load(Ordering::Relaxed)),
        };
        let workers = snaps.blue.iter().zip(&snaps.green).map(|(b, g)| round.work(b, g));
        let result = futures_util::future::try_join_all(workers).await;
        let shared = round.shared.into_inner();
        widths = shared.steps.iter().map(|s| s.as_ref().and_then(Option::as_ref).map(Stepper::width)).collect();
        *saved = shared.saved;
        *plans = shared.plans;
        saved.save(file)?;
        result?;
    }
    Ok(())
}

/// A planned table whose key is no longer the planned column alone is compared whole; a table
/// whose plan was partly compared cannot change course (its key changed during the run): an error.
fn unplan_changed_keys(
    opts: &LiveOptions,
    shapes: &BTreeMap<String, Shape>,
    saved: &Saved,
    plans: &mut [Option<VecDeque<Range>>],
    run: &mut RunLog,
) -> Result<(), Error> {
    let Some(recheck) = &opts.recheck else { return Ok(()) };
    for (state, plan) in saved.tables.iter().zip(plans.iter_mut()) {
        let Some(Plan::Chunks { column, .. }) = recheck.plans.get(&state.table) else { continue };
        if plan.is_none() || state.done {
            continue;
        }
        let keyed = shapes.get(&state.table).is_some_and(|s| matches!(s.key.as_slice(), [(i, _)] if s.columns.get(*i) == Some(column)));
        if keyed {
            continue;
        }
        if state.chunks > 0 {
            return Err(Error::Setup(format!("the key of {} changed during the continuous verify's re-check; it starts again", state.table)));
        }
        *plan = None;
        run.unplanned.insert(state.table.clone());
    }
    Ok(())
}

/// A chunk given out and not yet folded into its table's progress.
struct Pending {
    upper: Option<Key>,
    /// The table's last chunk.
    last: bool,
    result: Option<Chunk>,
}

/// One chunk's comparison.
struct Chunk {
    source: Sum,
    target: Sum,
    diffs: Vec<RowDiff>,
}

/// Progress shared by a round's workers.
struct Shared {
    saved: Saved,
    /// Per table: the lower bound of the next chunk to give out, and whether all were given out.
    next: Vec<(Option<Key>, bool)>,
    /// Per table: chunks given out, oldest first (by sequence number).
    pending: Vec<VecDeque<(u64, Pending)>>,
    /// Per table: the ranges still to give out when only some chunks are compared.
    plans: Vec<Option<VecDeque<Range>>>,
    /// Per table, once looked up in this round: how its chunks are cut by value (`Some(None)`: by row
    /// count, its key is not one integer column).
    steps: Vec<Option<Option<Stepper>>>,
    /// Per table: the chunk width by value the round before ended with.
    widths: Vec<Option<i128>>,
    next_seq: u64,
    last_save: Instant,
}

impl Shared {
    fn new(saved: Saved, plans: Vec<Option<VecDeque<Range>>>, widths: Vec<Option<i128>>) -> Shared {
        let next = saved.tables.iter().map(|t| (t.watermark.clone(), t.done)).collect();
        let pending = saved.tables.iter().map(|_| VecDeque::new()).collect();
        let steps = saved.tables.iter().map(|_| None).collect();
        Shared { saved, next, pending, plans, steps, widths, next_seq: 0, last_save: Instant::now() }
    }

    /// Folds the completed chunks at the front of table `t`'s queue into its progress (in key order,
    /// so the watermark never passes a chunk not compared).
    fn fold(&mut self, t: usize, rows_done: &AtomicU64) {
        let state = &mut self.saved.tables[t];
        while self.pending[t].front().is_some_and(|(_, p)| p.result.is_some()) {
            let Some((_, Pending { upper, last, result: Some(chunk) })) = self.pending[t].pop_front() else { break };
            let (source_rows, target_rows) = (u64::try_from(chunk.source.rows).unwrap_or(0), u64::try_from(chunk.target.rows).unwrap_or(0));
            state.chunks += 1;
            state.source_rows += source_rows;
            state.target_rows += target_rows;
            rows_done.fetch_add(source_rows, Ordering::Relaxed);
            let differs = chunk.source != chunk.target;
            if differs {
                state.differing_chunks += 1;
            }
            for d in chunk.diffs {
                state.record(d);
            }
            state.bounds.push(progress::Bound { upper: upper.clone(), source_rows, target_rows, differs });
            state.done = last;
            state.watermark = upper;
        }
    }
}

/// One round: its snapshots' shapes and the shared progress.
struct Round<'a, B> {
    backend: &'a B,
    shapes: BTreeMap<String, Shape>,
    opts: &'a LiveOptions,
    deadline: Instant,
    shared: tokio::sync::Mutex<Shared>,
    file: &'a std::path::Path,
    rows_done: &'a AtomicU64,
    /// When pacing began and the rows per second allowed.
    pace: Option<(Instant, u64)>,
    /// The rows compared before this round and those the source has hashed in it: what the pace
    /// counts.
    hashed: AtomicU64,
}

impl<B: Backend> Round<'_, B> {
    /// A worker: takes the next chunk, compares it on both sides, records it; until nothing is left or
    /// the snapshots are too old.
    ///
    /// The two sides run as a pipeline: the source session gives out chunks and hashes them, each chunk
    /// going to the target session as soon as it is given out, so the target does not wait for the
    /// source's hash of a chunk before starting its own; the source runs at most [`AHEAD`] chunks
    /// ahead. A chunk is recorded once both sums are in (and, if they differ, its rows located),
    /// exactly as when the sides ran in step. The pace (`rows_per_second`) holds back the giving out;
    /// while this worker locates differing rows on its source session, it gives out nothing (the
    /// lock that gives chunks out would otherwise wait behind the location's queries).
    async fn work(&self, blue: &B::Session, green: &B::Session) -> Result<(), Error> {
        let (chunks, mut given) = tokio::sync::mpsc::channel::<Given<'_>>(AHEAD);
        let locating = tokio::sync::Mutex::new(());
        let feed = async {
            // Every worker compares at least one chunk per round, so rounds always make progress.
            let mut first = true;
            while first || Instant::now() < self.deadline {
                if !first {
                    self.keep_pace().await;
                    if Instant::now() >= self.deadline {
                        break;
                    }
                }
                first = false;
                let asked = Instant::now();
                let next = {
                    let _quiet = locating.lock().await;
                    self.next_chunk(blue).await?
                };
                let Some((t, seq, shape, range)) = next else { break };
                let (sum, source) = tokio::sync::oneshot::channel();
                let chunk = Given { t, seq, shape, range: range.clone(), given: asked.elapsed(), source };
                if chunks.send(chunk).await.is_err() {
                    break;
                }
                let (hashed, on_blue) = timed(self.backend.sum(shape, blue, &range, Side::Blue)).await?;
                self.observe(t, &range, hashed.rows).await;
                // The target side stopped (its error is the one returned).
                let _ = sum.send((hashed, on_blue));
            }
            drop(chunks);
            Ok::<_, Error>(())
        };
        let drain = async {
            while let Some(chunk) = given.recv().await {
                let (target, on_green) = timed(self.backend.sum(chunk.shape, green, &chunk.range, Side::Green)).await?;
                // The source side stopped: its error is the one returned.
                let Ok((source, on_blue)) = chunk.source.await else { break };
                let Given { t, seq, shape, range, given: handed_out, .. } = chunk;
                tracing::debug!(table = %shape.table.quoted(), rows = source.rows, given = ?handed_out, ?on_blue, ?on_green, "chunk compared");
                let mut diffs = Vec::new();
                if source != target && !shape.key.is_empty() {
                    let _quiet = locating.lock().await;
                    let sides = Sides { backend: self.backend, blue, green };
                    locate(shape, &sides, range.clone(), source.clone(), target.clone(), self.opts.show_values, &mut diffs).await?;
                }
                self.record(t, seq, Chunk { source, target, diffs }).await?;
            }
            Ok::<_, Error>(())
        };
        tokio::try_join!(feed, drain)?;
        Ok(())
    }

    /// Waits while the rows hashed on the source so far are ahead of the pace (`rows_per_second`).
    async fn keep_pace(&self) {
        if let Some((since, rate)) = self.pace {
            let due = Duration::from_secs_f64(self.hashed.load(Ordering::Relaxed) as f64 / rate as f64);
            if let Some(early) = due.checked_sub(since.elapsed()) {
                tokio::time::sleep(early).await;
            }
        }
    }

    /// Counts a chunk the source hashed toward the pace and teaches the table's stepper its row
    /// count (at once, so the next chunk's width follows it).
    async fn observe(&self, t: usize, range: &Range, rows: i64) {
        self.hashed.fetch_add(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
        if let Some(Some(stepper)) = self.shared.lock().await.steps[t].as_mut() {
            stepper.observe(range, rows);
        }
    }

    /// Records one compared chunk: folds it into its table's progress (in key order; saved every
    /// half second).
    async fn record(&self, t: usize, seq: u64, chunk: Chunk) -> Result<(), Error> {
        let mut shared = self.shared.lock().await;
        if let Some((_, p)) = shared.pending[t].iter_mut().find(|(s, _)| *s == seq) {
            p.result = Some(chunk);
        }
        shared.fold(t, self.rows_done);
        if shared.last_save.elapsed() >= Duration::from_millis(500) {
            shared.saved.save(self.file)?;
            shared.last_save = Instant::now();
        }
        Ok(())
    }

    /// Gives out the next chunk: its table, sequence number, shape and key range. The upper bound is
    /// read on the source, under the lock, so chunks are given out in key order.
    async fn next_chunk(&self, blue: &B::Session) -> Result<Option<(usize, u64, &Shape, Range)>, Error> {
        let mut shared = self.shared.lock().await;
        let Some(t) = shared.next.iter().position(|(_, all_out)| !all_out) else { return Ok(None) };
        let name = shared.saved.tables[t].table.clone();
        let shape = self.shapes.get(&name).ok_or_else(|| Error::Setup(format!("table {name} is gone from blue")))?;
        if let Some(plan) = shared.plans[t].as_mut() {
            // Only the planned chunks of this table.
            let Some(range) = plan.pop_front() else { return Err(Error::Internal(format!("the re-check of {name} planned no chunk"))) };
            let last = plan.is_empty();
            shared.next[t] = (range.upper.clone(), last);
            let seq = shared.next_seq;
            shared.next_seq += 1;
            shared.pending[t].push_back((seq, Pending { upper: range.upper.clone(), last, result: None }));
            return Ok(Some((t, seq, shape, range)));
        }
        let lower = shared.next[t].0.clone();
        let upper = if shape.key.is_empty() {
            shared.saved.tables[t].keyless = true;
            None
        } else {
            if shared.steps[t].is_none() {
                let span = self.backend.span(shape, blue, Side::Blue).await?;
                let width = shared.widths.get(t).copied().flatten();
                shared.steps[t] = Some(span.map(|(min, max)| Stepper::new(min, max, self.opts.chunk_rows, width)));
            }
            match shared.steps[t].as_ref().and_then(|s| s.as_ref()?.upper(lower.as_ref())) {
                Some(upper) => upper,
                None => {
                    let n = i64::try_from(self.opts.chunk_rows).unwrap_or(i64::MAX);
                    self.backend.boundary(shape, blue, &Range { lower: lower.clone(), upper: None }, n, Side::Blue).await?
                }
            }
        };
        shared.next[t] = (upper.clone(), upper.is_none());
        let seq = shared.next_seq;
        shared.next_seq += 1;
        shared.pending[t].push_back((seq, Pending { upper: upper.clone(), last: upper.is_none(), result: None }));
        Ok(Some((t, seq, shape, Range { lower, upper })))
    }
}

/// `work`'s result and how long it took.
async fn timed<T>(work: impl std::future::Future<Output = Result<T, Error>>) -> Result<(T, Duration), Error> {
    let started = Instant::now();
    Ok((work.await?, started.elapsed()))
}

/// How many chunks a worker's source session may hash ahead of its target session.
const AHEAD: usize = 2;

/// A chunk given out to a worker's target session, with the source's sum to come.
struct Given<'a> {
    t: usize,
    seq: u64,
    shape: &'a Shape,
    range: Range,
    /// How long giving it out took.
    given: Duration,
    source: tokio::sync::oneshot::Receiver<(Sum, Duration)>,
}

/// A worker's two sessions and their backend.
struct Sides<'a, B: Backend> {
    backend: &'a B,
    blue: &'a B::Session,
    green: &'a B::Session,
}

/// Finds the rows that differ in `range`, whose sums differ: halves are compared again until few
/// rows are left, which are compared column by column. Iterative (ranges still to look at on a
/// stack, left before right), so depth costs no call stack.
async fn locate<B: Backend>(
    shape: &Shape,
    sides: &Sides<'_, B>,
    range: Range,
    source: Sum,
    target: Sum,
    show_values: bool,
    out: &mut Vec<RowDiff>,
) -> Result<(), Error> {
    let mut todo = vec![(range, source, target, 0u32)];
    while let Some((range, source, target, depth)) = todo.pop() {
        let larger = source.rows.max(target.rows);
        // Each split halves one side's rows; the depth bound only guards against sides that order
        // keys differently (a collation that changed between versions): then rows are compared.
        let mid = if larger > LEAF_ROWS && depth < 2 * 64 {
            let (session, side) = if source.rows >= target.rows { (sides.blue, Side::Blue) } else { (sides.green, Side::Green) };
            sides.backend.boundary(shape, session, &range, larger / 2, side).await?
        } else {
            None
        };
        let Some(mid) = mid else {
            let (b, g) =
                tokio::try_join!(sides.backend.rows(shape, sides.blue, &range, Side::Blue), sides.backend.rows(shape, sides.green, &range, Side::Green))?;
            out.extend(compare_rows(shape, b, g, show_values));
            continue;
        };
        let halves = [Range { lower: range.lower.clone(), upper: Some(mid.clone()) }, Range { lower: Some(mid), upper: range.upper }];
        let mut differing = Vec::with_capacity(2);
        for half in halves {
            let (s, t) = tokio::try_join!(sides.backend.sum(shape, sides.blue, &half, Side::Blue), sides.backend.sum(shape, sides.green, &half, Side::Green))?;
            if s != t {
                differing.push((half, s, t, depth + 1));
            }
        }
        todo.extend(differing.into_iter().rev());
    }
    Ok(())
}

/// The rows that differ between two sets of the same key range, in key text order.
fn compare_rows(shape: &Shape, source: Rows, target: Rows, show_values: bool) -> Vec<RowDiff> {
    let named = |key: &Key| shape.key.iter().map(|(i, _)| shape.columns[*i].clone()).zip(key.iter().cloned()).collect::<Vec<_>>();
    let mut target: BTreeMap<Key, Vec<Option<String>>> = target.into_iter().collect();
    let mut out = Vec::new();
    let source: BTreeMap<Key, Vec<Option<String>>> = source.into_iter().collect();
    for (key, values) in source {
        match target.remove(&key) {
            None => out.push(RowDiff { kind: DiffKind::Missing, key: named(&key), columns: Vec::new(), values: Vec::new() }),
            Some(other) if other != values => {
                let differing: Vec<usize> = (0..shape.columns.len()).filter(|&j| values.get(j) != other.get(j)).collect();
                out.push(RowDiff {
                    kind: DiffKind::Changed,
                    key: named(&key),
                    columns: differing.iter().map(|&j| shape.columns[j].clone()).collect(),
                    values: if show_values {
                        differing.iter().map(|&j| (shape.columns[j].clone(), values[j].clone(), other.get(j).cloned().flatten())).collect()
                    } else {
                        Vec::new()
                    },
                });
            }
            Some(_) => {}
        }
    }
    out.extend(target.into_keys().map(|key| RowDiff { kind: DiffKind::Extra, key: named(&key), columns: Vec::new(), values: Vec::new() }));
    out
}

/// Prints rows compared, rate and ETA every `every` until aborted.
async fn print_progress(rows_done: Arc<AtomicU64>, estimate: Option<u64>, every: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let rows = rows_done.load(Ordering::Relaxed);
        let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
        match estimate {
            Some(total) if rate > 0.0 => {
                let left = total.saturating_sub(rows) as f64 / rate;
                eprintln!("verify: {rows} of ~{total} rows ({:.0}%), {rate:.0} rows/s, ETA {left:.0} s", (rows as f64 * 100.0 / total as f64).min(100.0));
            }
            _ => eprintln!("verify: {rows} rows, {rate:.0} rows/s"),
        }
    }
}
