//! Why the definitions of the side traffic moves to could not be made the fenced side's
//! ([`crate::source::pg::definitions`]), or changed again before the switch. Every variant names the
//! objects and what the operator does; nothing after the fence stands (the fence is undone).

use turnout_decoders::Side;

/// A refusal of the definitions' settling.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionRefusal {
    /// Objects defined differently that turnout cannot carry.
    #[error(
        "{to}'s definitions differ from {from}'s in {count} objects turnout does not carry — after the switch the application would meet \
         the difference:\n{objects}"
    )]
    Uncarried { from: Side, to: Side, count: usize, objects: String },
    /// A statement making an object like the fenced side's failed on the other side.
    #[error("making {object} on {to} as it is on {from} failed: {cause}. Make it equal on {to} by hand (or drop it there so that turnout creates it), then cut over again")]
    NotApplied { from: Side, to: Side, object: String, cause: String },
    /// The fenced side's schema cannot be created on the other side's server at all.
    #[error("{from}'s definition of {entry} cannot be created on {to}'s server: {cause}. Change it on {from} to a form {to} takes, then cut over again")]
    NotCreatable { from: Side, to: Side, entry: String, cause: String },
    /// The scratch database the comparison needs cannot be created.
    #[error(
        "turnout compares definitions in a scratch database it creates on {to}'s server and drops, which role {role} may not create: \
         ALTER ROLE {role} CREATEDB on {to} ({cause})"
    )]
    NoScratch { to: Side, role: String, cause: String },
    /// Still different after turnout made them equal: something changed them meanwhile.
    #[error("{to}'s definitions still differ from {from}'s after turnout carried them (changed again meanwhile?): {objects}; cut over again")]
    Unsettled { from: Side, to: Side, objects: String },
    /// The fenced side's definitions changed after they were settled (seen again before or inside the
    /// pause).
    #[error(
        "{from}'s definitions changed after turnout made {to}'s equal to them{when}: {changes}. Cut over again: the new definitions are \
         carried then"
    )]
    ChangedSince { from: Side, to: Side, when: &'static str, changes: String },
    /// No pg_dump new enough for both servers.
    #[error(
        "turnout compares definitions with a pg_dump at least as new as each server, here PostgreSQL {min} ({seen}); install \
         postgresql-client-{min} or newer (the new major's client tools), or set source.pg_dump = \"/path/to/pg_dump\""
    )]
    NoPgDump { min: u32, seen: String },
    /// Objects of the fenced side that a cutover to another engine does not translate, and the
    /// operator has not said are made on the other side.
    #[error(
        "{from} ({from_engine}) has {count} objects that turnout does not translate to {to_engine}: {objects}. After the switch the application \
         would meet {to} without them: create each on {to} in {to_engine}'s form and name it in cutover.keep_definitions (e.g. \
         keep_definitions = [\"{example}\"]), or drop it on {from}; the certificate records each kept object"
    )]
    NotTranslated { from: Side, to: Side, from_engine: &'static str, to_engine: &'static str, count: usize, objects: String, example: String },
    /// turnout's account on the fenced side cannot see every object its catalog holds.
    #[error(
        "turnout's account on {from} does not see every object of database {db} (its catalog lists a trigger, an event, a view's text or a \
         routine only to an account allowed them), so it cannot prove none is left behind: GRANT {missing} to {user} on {from} \
         (e.g. GRANT TRIGGER, EVENT, SHOW VIEW ON `{db}`.* TO '{user}'@'%')"
    )]
    Unseen { from: Side, missing: String, db: String, user: String },
    /// Materialized views whose rows a refresh on the other side does not make the fenced side's:
    /// the fenced side's was last refreshed before what its query reads changed.
    #[error(
        "{from}'s materialized views hold rows their queries no longer return, which a refresh on {to} cannot give: {views}. REFRESH \
         MATERIALIZED VIEW on {from} (or wait for the application's next refresh) and cut over again, or keep {to}'s refreshed rows by \
         naming them in cutover.keep_definitions (e.g. keep_definitions = [\"{example}\"]); the certificate records each kept object"
    )]
    Frozen { from: Side, to: Side, views: String, example: String },
    /// Stored generated columns computed through functions the database defines, which the operator
    /// has not vouched for.
    #[error(
        "{from}'s stored generated columns {columns} are computed through functions the database defines; green computes them again \
         in turnout's session, and a function labelled IMMUTABLE that reads a setting (TimeZone, DateStyle, search_path, …) or a table \
         gives other values there than the application's sessions got on {from}. Compare them (turnout verify compares every column) \
         and, if each function is truly immutable, name the columns in cutover.keep_definitions (e.g. keep_definitions = \
         [\"{example}\"]); the certificate records each kept column"
    )]
    GeneratedThrough { from: Side, columns: String, example: String },
    /// Differences a dry run or `verify` found, which a cutover would carry or refuse.
    #[error("{to}'s definitions differ from {from}'s in {count} objects:\n{objects}")]
    Differ { from: Side, to: Side, count: usize, objects: String },
}
