//! Green's definitions made equal to blue's at the switch — every object the schema copy brings
//! over, in every schema, whatever the application changed on blue after the copy — across any two
//! supported major versions (the decision record `0016-definitions-equal-at-the-switch`).
//!
//! pgoutput carries rows, not definitions: a view's `WHERE`, a function's body, an enum label, a
//! policy, a database setting changed on blue after the copy would otherwise be missing on green,
//! and two servers of different majors print one definition differently, so the two sides' texts
//! cannot be compared as they are. Instead, after the lag wait and before the fence, [`Settle::run`]:
//!
//! 1. takes the fenced side's catalog [`Mark`];
//! 2. dumps the fenced side's schema (`pg_dump --schema-only` with the pg_dump the schema copy uses:
//!    the oldest at least as new as that server, whose output it restores without a word a newer
//!    pg_dump would add) and creates it in a [scratch database](scratch) on the other side's server;
//! 3. dumps the scratch database and the other side's database with one pg_dump at least as new as
//!    that server: both are now printed by one server and one pg_dump, so their entries compare as
//!    text, whatever major first defined them ([`entries`]);
//! 4. makes every difference equal on the other side ([`reapply`]), and the database settings
//!    ([`settings`]), then dumps the other side again until nothing differs (a few rounds: an object
//!    created again brings back what hung off it);
//! 5. drops the scratch database.
//!
//! Just before the fence and inside the write pause the cutover looks again
//! ([`Settled::unchanged`]): any definition created, altered or dropped on the fenced side since
//! step 1 undoes the fence, naming it. What
//! cannot be carried (a table's columns, an object only the other side has, an enum label removed)
//! refuses the cutover naming the object and the fix, before anything changes; objects the operator
//! keeps different on purpose are named in `cutover.keep_definitions`.

pub(crate) mod contents;
mod entries;
pub(crate) mod generated;
mod mark;
mod reapply;
mod scratch;
mod settings;

pub(crate) use mark::{Fingerprint, Mark};

use crate::error::{DefinitionRefusal, Error, Side};
use entries::{Difference, Script};
use std::path::{Path, PathBuf};
use tokio_postgres::Client;
use turnout_connect::pg::ConnectOptions;
use turnout_decoders::schema::TableName;

/// How many times the other side is compared and made equal before the settling gives up: an
/// object created again (a materialized view) drops what hung off it (its indexes), which the next
/// round creates.
const ROUNDS: usize = 3;

/// One settling of the definitions: the fenced side (whose definitions are wanted) and the side
/// traffic moves to (whose definitions are made equal).
pub(crate) struct Settle<'a> {
    /// A session to the fenced side.
    pub fenced: &'a Client,
    pub fenced_options: &'a ConnectOptions,
    pub other_options: &'a ConnectOptions,
    /// The fenced side and the other (`blue`, `green` in a cutover).
    pub sides: (Side, Side),
    /// `source.pg_dump`, when configured.
    pub pg_dump: Option<&'a Path>,
    /// Tables `[tables]` leaves out (not compared, as the schema copy leaves them out).
    pub left_out: &'a [TableName],
    /// `cutover.keep_definitions`: objects the other side keeps as they are.
    pub keep: &'a [String],
    /// Make the other side equal (false: compare only, for a dry run and `verify`).
    pub apply: bool,
}

/// What a settling found and did, as facts for the certificate.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settled {
    /// The fenced side's mark when the settling began.
    pub mark: Mark,
    /// The fenced side's catalogs' row versions when last found to hold [`Settled::mark`]: what the
    /// write pause compares, cheaply (taken on the session passed to [`Settle`]).
    pub fingerprint: Option<Fingerprint>,
    /// Objects compared, and database settings.
    pub compared: usize,
    /// What was made equal: `VIEW public.v: replaced`, one line each.
    pub carried: Vec<String>,
    /// Differences kept by `cutover.keep_definitions`.
    pub kept: Vec<String>,
    /// Compare-only: each difference found, all of which a cutover would carry.
    pub differences: Vec<String>,
}

impl Settled {
    /// The line the cutover prints and records.
    pub fn line(&self, sides: (Side, Side)) -> String {
        let (from, to) = sides;
        if !self.differences.is_empty() {
            return format!(
                "{to}'s definitions differ from {from}'s in {} objects, which the cutover carries after its lag wait:\n{}",
                self.differences.len(),
                self.differences.iter().map(|d| format!("- {d}")).collect::<Vec<_>>().join("\n")
            );
        }
        let mut line = format!("{to}'s definitions equal {from}'s ({} objects compared", self.compared);
        if !self.carried.is_empty() {
            line.push_str(&format!("; carried {}: {}", self.carried.len(), self.carried.join(", ")));
        }
        if !self.kept.is_empty() {
            line.push_str(&format!("; kept different by cutover.keep_definitions: {}", self.kept.join(", ")));
        }
        line.push(')');
        line
    }

    /// Whether the fenced side's definitions are still those the settling began with: the error
    /// naming what changed otherwise. `when` says where it was looked at (" inside the write pause").
    /// The catalogs' row versions are compared first (milliseconds); only when they moved are the
    /// definitions themselves compared — a `TRUNCATE` moves them and changes no definition, and the
    /// versions read then become the ones compared next.
    pub async fn unchanged(&mut self, fenced: &Client, sides: (Side, Side), when: &'static str) -> Result<(), Error> {
        let moved = match &self.fingerprint {
            Some(fingerprint) => match fingerprint.holds(fenced, sides.0).await? {
                None => return Ok(()),
                Some(now) => Some(now),
            },
            None => None,
        };
        let changes = Mark::take(fenced, sides.0).await?.changed_since(&self.mark);
        if changes.is_empty() {
            if moved.is_some() {
                self.fingerprint = moved;
            }
            return Ok(());
        }
        Err(DefinitionRefusal::ChangedSince { from: sides.0, to: sides.1, when, changes: changes.join(", ") }.into())
    }
}

impl Settle<'_> {
    /// Settles the definitions (see the module documentation).
    pub async fn run(&self) -> Result<Settled, Error> {
        let (from, to) = self.sides;
        let mark = Mark::take(self.fenced, from).await?;
        let fingerprint = Fingerprint::take(self.fenced, from).await?;
        let (fenced_dump, pg_dump) = self.pg_dumps().await?;
        let wanted = super::setup::dump_whole_schema(&fenced_dump, self.fenced_options, self.left_out).await?;
        let other = super::session_with(self.other_options, to).await?;
        let scratch = scratch::Scratch::create(&other, self.other_options, to).await?;
        let settled = self.against_scratch(&pg_dump, &scratch, &wanted, &other).await;
        let dropped = scratch.drop(&other).await;
        let mut settled = settled?;
        dropped?;
        settled.mark = mark;
        settled.fingerprint = Some(fingerprint);
        Ok(settled)
    }

    /// The pg_dump for the fenced side (the oldest at least as new as it, as the schema copy's), and
    /// the one for the other side's server (the oldest at least as new as it). A newer pg_dump than
    /// a server's own may print what that server's minor releases keep internal (PostgreSQL 15.20's
    /// `pg_attver` column option, which 17.10 prints and refuses).
    async fn pg_dumps(&self) -> Result<(PathBuf, PathBuf), Error> {
        let other = super::session_with(self.other_options, self.sides.1).await?;
        let (fenced, theirs) = (major(self.fenced, self.sides.0).await?, major(&other, self.sides.1).await?);
        Ok((pg_dump_for(self.pg_dump, fenced).await?, pg_dump_for(self.pg_dump, theirs).await?))
    }

    async fn against_scratch(&self, pg_dump: &Path, scratch: &scratch::Scratch, wanted: &str, other: &Client) -> Result<Settled, Error> {
        let (from, to) = self.sides;
        scratch.restore(wanted, !self.left_out.is_empty(), from).await?;
        let want = entries::parse(&super::setup::dump_whole_schema(pg_dump, &scratch.options, self.left_out).await?);
        let mut settled = Settled { compared: want.entries.len(), ..Settled::default() };
        let mut left = Vec::new();
        for round in 0..ROUNDS {
            let have = entries::parse(&super::setup::dump_whole_schema(pg_dump, self.other_options, self.left_out).await?);
            let (differences, kept) = self.differences(&want, &have);
            let setting_changes = settings::changes(&settings::read(self.fenced, from).await?, &settings::read(other, to).await?, &self.other_options.database);
            if round == 0 {
                settled.kept = kept;
                settled.compared += setting_changes.len();
            }
            if differences.is_empty() && setting_changes.is_empty() {
                return Ok(settled);
            }
            let lines: Vec<String> = differences
                .iter()
                .map(|d| d.describe(from.name(), to.name()))
                .chain(setting_changes.iter().map(|c| format!("{} differs ({})", c.what, c.statement)))
                .collect();
            // What cannot be carried refuses before anything changes, in a dry run as well.
            let plans = self.plans(&differences)?;
            if !self.apply {
                settled.differences = lines;
                return Ok(settled);
            }
            if round + 1 == ROUNDS {
                left = lines;
                break;
            }
            let session = super::session_with(self.other_options, to).await?;
            session.batch_execute(&super::setup::adapt_to_green(&session, &want.preamble).await?).await.map_err(Error::sql(to, "setting up the session"))?;
            for plan in plans {
                apply(&session, &plan.statements, (from, to), &plan.object).await?;
                settled.carried.push(format!("{}: {}", plan.object, plan.action));
            }
            for change in setting_changes {
                apply(&session, std::slice::from_ref(&change.statement), (from, to), &change.what).await?;
                settled.carried.push(format!("{}: set", change.what));
            }
        }
        Err(DefinitionRefusal::Unsettled { from, to, objects: left.join("; ") }.into())
    }

    /// The differences between `want` and `have` that are not kept by configuration, and those kept.
    fn differences(&self, want: &Script, have: &Script) -> (Vec<Difference>, Vec<String>) {
        let (kept, differences): (Vec<Difference>, Vec<Difference>) =
            entries::compare(&want.entries, &have.entries).into_iter().partition(|d| self.keep.iter().any(|k| *k == d.key()));
        (differences, kept.iter().map(Difference::key).collect())
    }

    /// A plan for every difference, or the refusal naming all that cannot be carried (nothing
    /// changed then).
    fn plans(&self, differences: &[Difference]) -> Result<Vec<reapply::Plan>, Error> {
        let (from, to) = self.sides;
        let mut plans = Vec::new();
        let mut uncarried = Vec::new();
        for d in differences {
            match reapply::plan(d, to.name()) {
                Ok(plan) => plans.push(plan),
                Err(u) => uncarried.push(format!("- {}: {}", d.describe(from.name(), to.name()), u.fix)),
            }
        }
        if !uncarried.is_empty() {
            return Err(DefinitionRefusal::Uncarried { from, to, count: uncarried.len(), objects: uncarried.join("\n") }.into());
        }
        Ok(plans)
    }
}

/// A pg_dump of PostgreSQL `newest` or newer (`source.pg_dump` when configured: it must then be new
/// enough for both servers), or the refusal saying what was found.
pub(crate) async fn pg_dump_for(configured: Option<&Path>, newest: i32) -> Result<PathBuf, Error> {
    use crate::error::{Refusal, SchemaRefusal};
    super::setup::find_pg_dump(configured, u32::try_from(newest).unwrap_or(0)).await.map_err(|e| match e {
        Error::Refused(Refusal::Schema(SchemaRefusal::NoPgDump { min, seen })) => DefinitionRefusal::NoPgDump { min, seen }.into(),
        other => other,
    })
}

/// The server's major version.
pub(crate) async fn major(client: &Client, side: Side) -> Result<i32, Error> {
    client
        .query_one("SELECT current_setting('server_version_num')::int / 10000", &[])
        .await
        .map(|r| r.get::<_, i32>(0))
        .map_err(Error::sql(side, format!("reading {side}'s server version")))
}

/// Runs `statements` in one transaction on `session`: all of them or none.
async fn apply(session: &Client, statements: &[String], (from, to): (Side, Side), object: &str) -> Result<(), Error> {
    let mut batch = String::from("BEGIN;\n");
    for s in statements {
        batch.push_str(s.trim_end().trim_end_matches(';'));
        batch.push_str(";\n");
    }
    batch.push_str("COMMIT;");
    if let Err(e) = session.batch_execute(&batch).await {
        let _ = session.batch_execute("ROLLBACK").await;
        return Err(DefinitionRefusal::NotApplied { from, to, object: object.to_owned(), cause: turnout_sinks::pg::describe_error(&e) }.into());
    }
    tracing::info!("{object}: made on {to} as on {from}");
    Ok(())
}
