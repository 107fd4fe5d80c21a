//! PostgreSQL's inventory ([`crate::source::contract::inventory`]): every object in blue's database,
//! read from its catalogs, and what turnout does with each class.
//!
//! The world is closed at two levels:
//! - **Catalogs.** Every catalog of the database that holds objects (`pg_catalog` tables with an `oid`
//!   column, not shared) is either one this module reads ([`KNOWN`], [`FOLDED`]) or is refused as soon as
//!   it holds a user object (oid ≥ 16384), naming it: an object of a kind a newer server added cannot
//!   pass unseen.
//! - **Kinds.** Relations are classed by `relkind` × `relpersistence` (an unknown kind is refused);
//!   other objects by the kind `pg_identify_object` names (an unknown kind is refused).
//!
//! Left out of the counts: what belongs to another object and is created with it (objects with an
//! internal dependency: a table's row type and TOAST table, an array type, a constraint's index, a
//! view's rule), members of extensions (created by `CREATE EXTENSION`), turnout's own objects, and
//! the system's (oid below 16384).
//!
//! Classes and what happens to them:
//!
//! | class | handling |
//! | --- | --- |
//! | table, partitioned table, partition, inheritance child (selected, logged) | streamed |
//! | table with row-level security | streamed when turnout's role bypasses it, else refused (`BYPASSRLS`) |
//! | unlogged table (selected) | refused: never in the WAL (`ALTER TABLE … SET LOGGED`, or `tables.exclude`) |
//! | table left out by `[tables]`, another session's temporary table | left out |
//! | view, index, composite type, foreign table, type, function, procedure, aggregate, schema, operator…, extension, trigger, rule, policy, statistics object, event trigger | copied with the schema, compared at the cutover |
//! | trigger or rule enabled `ALWAYS`/`REPLICA` | refused: it would fire again for turnout's apply on green |
//! | sequence | values moved ahead at the cutover |
//! | materialized view | refreshed on green before the fence when blue's is populated |
//! | extension green's server lacks | refused |
//! | large object | refused: logical replication carries none |
//! | publication, subscription, logical or physical slot (not turnout's), default privileges, grants, owners, database settings | the operator's (named, with the command) |
//! | an unknown relation kind, object kind or catalog | refused |

use crate::error::{Error, Side};
use crate::source::contract::inventory::{Class, Handling, Inventory};
use crate::tables::Selection;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;
use turnout_decoders::schema::TableName;

/// Catalogs whose objects are listed one by one through `pg_identify_object`.
const KNOWN: &[&str] = &[
    "pg_type",
    "pg_proc",
    "pg_namespace",
    "pg_operator",
    "pg_opclass",
    "pg_opfamily",
    "pg_am",
    "pg_cast",
    "pg_collation",
    "pg_conversion",
    "pg_language",
    "pg_ts_config",
    "pg_ts_dict",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_user_mapping",
    "pg_default_acl",
    "pg_extension",
    "pg_event_trigger",
    "pg_publication",
    "pg_transform",
];

/// Catalogs read another way: relations (their own query), what hangs off a table (triggers, rules,
/// policies, statistics objects: with their table), parts of another object (constraints, defaults,
/// enum labels, the members of an operator family, a publication's tables), and large objects
/// (counted).
const FOLDED: &[&str] = &[
    "pg_class",
    "pg_trigger",
    "pg_rewrite",
    "pg_policy",
    "pg_statistic_ext",
    "pg_constraint",
    "pg_attrdef",
    "pg_enum",
    "pg_amop",
    "pg_amproc",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_largeobject_metadata",
];

/// The first oid of an object a user (not initdb) created.
const FIRST_USER_OID: u32 = 16384;

/// What the role turnout connects as may do about row-level security.
#[derive(Clone, Debug)]
struct Role {
    name: String,
    /// Superuser or `BYPASSRLS`: no policy ever applies.
    bypasses: bool,
}

/// One relation of the database as the inventory sees it.
#[derive(Clone, Debug)]
struct Relation {
    name: TableName,
    kind: char,
    persistence: char,
    partition: bool,
    /// An inheritance child (not a partition).
    inherits: bool,
    /// An ordinary table other tables inherit from.
    parent: bool,
    row_security: bool,
    forced: bool,
    /// The role is the owner or a member of it.
    owned: bool,
    temporary: bool,
    owner: String,
    granted: bool,
}

const RELATIONS: &str = "\
    SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, c.relispartition, \
      (NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)), \
      (c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)), \
      c.relrowsecurity, c.relforcerowsecurity, pg_has_role(c.relowner, 'USAGE'), \
      n.nspname LIKE 'pg\\_temp\\_%', pg_get_userbyid(c.relowner)::text, c.relacl IS NOT NULL \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.oid >= 16384 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg\\_toast%' \
      AND NOT (c.relname LIKE 'turnout\\_heartbeat%' AND n.nspname = 'public') \
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('i', 'e'))";

async fn relations(client: &Client, side: Side) -> Result<Vec<Relation>, Error> {
    let rows = client.query(RELATIONS, &[]).await.map_err(Error::sql(side, "listing the database's relations"))?;
    let ch = |s: String| s.chars().next().unwrap_or('?');
    Ok(rows
        .iter()
        .map(|r| Relation {
            name: TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            kind: ch(r.get(2)),
            persistence: ch(r.get(3)),
            partition: r.get(4),
            inherits: r.get(5),
            parent: r.get(6),
            row_security: r.get(7),
            forced: r.get(8),
            owned: r.get(9),
            temporary: r.get(10),
            owner: r.get(11),
            granted: r.get(12),
        })
        .collect())
}

async fn role(client: &Client, side: Side) -> Result<Role, Error> {
    let r = client
        .query_one("SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(Error::sql(side, "reading the connected role"))?;
    Ok(Role { name: r.get(0), bypasses: r.get(1) })
}

/// `(kind, identity)` of every user object in the catalogs of [`KNOWN`] present on this server.
async fn identified(client: &Client, side: Side) -> Result<Vec<(String, String, Option<String>)>, Error> {
    let known: Vec<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    let present = client
        .query("SELECT relname::text FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relname = ANY($1)", &[&known])
        .await
        .map_err(Error::sql(side, "listing the catalogs"))?;
    let union: Vec<String> = present
        .iter()
        .map(|r| {
            let catalog: String = r.get(0);
            // pg_user_mapping holds passwords and only its view is readable to every role.
            let (from, oid) = match catalog.as_str() {
                "pg_user_mapping" => ("pg_catalog.pg_user_mappings", "umid"),
                _ => ("", "oid"),
            };
            let from = if from.is_empty() { format!("pg_catalog.{catalog}") } else { from.to_string() };
            format!("SELECT 'pg_catalog.{catalog}'::regclass AS classid, {oid} AS objid FROM {from} WHERE {oid} >= {FIRST_USER_OID}")
        })
        .collect();
    if union.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT i.type, i.identity, i.schema FROM ({}) o, LATERAL pg_identify_object(o.classid, o.objid, 0) i \
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype IN ('i', 'e')) \
           AND COALESCE(i.schema, '') NOT LIKE 'pg\\_temp\\_%' AND COALESCE(i.schema, '') NOT LIKE 'pg\\_toast%'",
        union.join(" UNION ALL ")
    );
    let rows = client.query(&sql, &[]).await.map_err(Error::sql(side, "listing the database's objects"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Catalogs that hold user objects but that this module does not know.
async fn unknown_catalogs(client: &Client, side: Side) -> Result<Vec<String>, Error> {
    let known: Vec<String> = KNOWN.iter().chain(FOLDED).map(|s| s.to_string()).collect();
    let catalogs = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'oid' AND a.attnum > 0 \
             WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared AND c.relname <> ALL($1) ORDER BY 1",
            &[&known],
        )
        .await
        .map_err(Error::sql(side, "listing the catalogs"))?;
    let names: Vec<String> = catalogs.iter().map(|r| r.get(0)).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for all of them: the stream's watch runs this every few seconds.
    let sql = names
        .iter()
        .map(|c| format!("SELECT 'pg_catalog.{c}'::text WHERE EXISTS (SELECT 1 FROM pg_catalog.{c} WHERE oid >= {FIRST_USER_OID})"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let used = client.query(&sql, &[]).await.map_err(Error::sql(side, format!("reading the catalogs {}", names.join(", "))))?;
    Ok(used.iter().map(|r| r.get(0)).collect())
}

/// Triggers, rules, policies and statistics objects with their table: `(kind, table, name, enabled)`.
const ATTACHED: &str = "\
    SELECT 'trigger', c.oid, quote_ident(t.tgname), t.tgenabled::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
      WHERE NOT t.tgisinternal AND t.oid >= 16384 \
    UNION ALL SELECT 'rule', c.oid, quote_ident(r.rulename), r.ev_enabled::text FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
      WHERE r.rulename <> '_RETURN' AND r.oid >= 16384 \
    UNION ALL SELECT 'policy', c.oid, quote_ident(p.polname), '' FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
    UNION ALL SELECT 'statistics object', c.oid, quote_ident(s.stxname), '' FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid";

async fn attached(client: &Client, side: Side) -> Result<Vec<(String, TableName, String, String)>, Error> {
    let sql = format!(
        "SELECT a.kind, n.nspname::text, c.relname::text, a.name, a.enabled FROM ({ATTACHED}) a(kind, rel, name, enabled) \
         JOIN pg_class c ON c.oid = a.rel JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
           AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
    );
    let rows = client.query(&sql, &[]).await.map_err(Error::sql(side, "listing triggers, rules and policies"))?;
    Ok(rows.iter().map(|r| (r.get(0), TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)), r.get(3), r.get(4))).collect())
}

/// Everything else the inventory names: large objects, subscriptions, slots, settings.
#[derive(Debug, Default)]
struct Elsewhere {
    large_objects: (u64, Vec<String>),
    subscriptions: Vec<String>,
    logical_slots: Vec<String>,
    physical_slots: Vec<String>,
    settings: Vec<String>,
    extensions: Vec<(String, String)>,
    collations: Vec<String>,
}

async fn elsewhere(client: &Client, side: Side) -> Result<Elsewhere, Error> {
    let e = Error::sql;
    let texts = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<String>>();
    let named = texts(client.query("SELECT oid::text FROM pg_largeobject_metadata ORDER BY oid LIMIT 8", &[]).await.map_err(e(side, "listing large objects"))?);
    let count: i64 = client.query_one("SELECT count(*)::int8 FROM pg_largeobject_metadata", &[]).await.map_err(e(side, "counting large objects"))?.get(0);
    let subscriptions = texts(
        client
            .query("SELECT subname::text FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())", &[])
            .await
            .map_err(e(side, "listing subscriptions"))?,
    );
    let logical_slots = texts(
        client
            .query(
                "SELECT slot_name::text || ' (' || COALESCE(plugin::text, '') || ')' FROM pg_replication_slots \
                 WHERE slot_type = 'logical' AND database = current_database() AND slot_name::text NOT LIKE 'turnout\\_%'",
                &[],
            )
            .await
            .map_err(e(side, "listing replication slots"))?,
    );
    let physical_slots = texts(
        client
            .query("SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical'", &[])
            .await
            .map_err(e(side, "listing replication slots"))?,
    );
    let settings = texts(
        client
            .query(
                "SELECT COALESCE('role ' || pg_get_userbyid(NULLIF(s.setrole, 0))::text || ': ', '') || array_to_string(s.setconfig, ', ') \
                 FROM pg_db_role_setting s WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .map_err(e(side, "reading the database's settings"))?,
    );
    let extensions = client
        .query("SELECT extname::text, extversion::text FROM pg_extension WHERE extname <> 'plpgsql'", &[])
        .await
        .map_err(e(side, "listing extensions"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let collations = texts(
        client
            .query(
                "SELECT DISTINCT quote_ident(co.collname) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_collation co ON co.oid = a.attcollation \
                 WHERE c.oid >= 16384 AND a.attnum > 0 AND NOT a.attisdropped AND co.collnamespace = 'pg_catalog'::regnamespace \
                   AND co.collname NOT IN ('default', 'C', 'POSIX', 'ucs_basic')",
                &[],
            )
            .await
            .map_err(e(side, "listing the collations columns use"))?,
    );
    Ok(Elsewhere { large_objects: (u64::try_from(count).unwrap_or(0), named), subscriptions, logical_slots, physical_slots, settings, extensions, collations })
}

/// What green's server lacks of what blue's objects need: extensions it cannot create and
/// collations it does not have.
async fn green_lacks(green: &Client, extensions: &[(String, String)], collations: &[String]) -> Result<(Vec<String>, Vec<String>), Error> {
    let names: Vec<String> = extensions.iter().map(|(n, _)| n.clone()).collect();
    let available: BTreeSet<String> = green
        .query("SELECT name::text FROM pg_available_extensions WHERE name = ANY($1)", &[&names])
        .await
        .map_err(Error::green("listing the extensions green's server has"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has: BTreeSet<String> = green
        .query("SELECT quote_ident(collname) FROM pg_collation WHERE collnamespace = 'pg_catalog'::regnamespace", &[])
        .await
        .map_err(Error::green("listing green's collations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((
        extensions.iter().filter(|(n, _)| !available.contains(n)).map(|(n, v)| format!("{n} {v}")).collect(),
        collations.iter().filter(|c| !has.contains(*c)).cloned().collect(),
    ))
}

/// Before the fence of a cutover (or a rollback, `fenced` being the side writes leave): the fenced
/// side's inventory refuses nothing, and every object of a class the schema copy or the cutover
/// brings over (views, functions, types, extensions, triggers, policies, sequences, materialized
/// views …) exists on the `other` side by the same identity. Returns the fenced side's inventory, whose
/// digest the certificate records.
pub async fn before_fence(fenced: &Client, other: &Client, filter: &crate::tables::TableFilter, skip_without_identity: bool) -> Result<Inventory, Error> {
    let selection = super::drift::selection(fenced, filter, skip_without_identity, Side::Blue).await?;
    let inventory = take(fenced, Some(other), &selection).await?;
    inventory.refusal("the cutover cannot go on")?;
    let theirs = super::drift::selection(other, &crate::tables::TableFilter::default(), false, Side::Green).await?;
    let theirs = take_on(other, Side::Green, None, &theirs).await?;
    let missing = missing_on(&inventory, &theirs);
    if !missing.is_empty() {
        return Err(Error::Setup(format!(
            "the side traffic moves to lacks {} object(s) the application may use: {}; create them there as on the side writes leave \
             (pg_dump --schema-only prints each), then cut over again",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(inventory)
}

/// The objects of `ours` that the schema copy or the cutover brings over and `theirs` lacks, as
/// `class name`.
fn missing_on(ours: &Inventory, theirs: &Inventory) -> Vec<String> {
    let have: BTreeSet<(&str, &str)> = theirs.classes.iter().flat_map(|c| c.objects.iter().map(move |o| (c.class.as_str(), o.as_str()))).collect();
    ours.classes
        .iter()
        .filter(|c| matches!(c.handling, Handling::Copied | Handling::AtCutover))
        .flat_map(|c| c.objects.iter().filter(|o| !have.contains(&(c.class.as_str(), o.as_str()))).map(move |o| format!("{} {o}", c.class)))
        .collect()
}

/// Before a cutover that arms the way back (`cutover.reverse`, or a rollback arming the next
/// generation): what the side traffic moves to (`other`) holds in the replicated tables that the
/// fenced side's server (`fenced`, of another major version perhaps) could not apply when the reverse
/// stream brings it back — a column type it lacks, a column generated `VIRTUAL` (PostgreSQL 18) on an
/// older server, an extension or collation its server lacks, and whatever `other`'s own inventory
/// refuses. An error naming each, and the two ways out.
pub async fn way_back(fenced: &Client, other: &Client, filter: &crate::tables::TableFilter, skip_without_identity: bool) -> Result<(), Error> {
    let selection = super::drift::selection(other, filter, skip_without_identity, Side::Green).await?;
    let inventory = take_on(other, Side::Green, Some(fenced), &selection).await?;
    let mut problems: Vec<String> = inventory.refused().map(|c| format!("{} ({}): {}", c.class, c.named(), c.what)).collect();
    let names: Vec<String> = selection.tables.iter().map(TableName::quoted).collect();
    let columns = other
        .query(
            "SELECT a.attrelid::regclass::text || '.' || quote_ident(a.attname), format_type(a.atttypid, NULL), a.attgenerated::text \
             FROM pg_attribute a WHERE a.attrelid = ANY (SELECT to_regclass(n) FROM unnest($1::text[]) n) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&names],
        )
        .await
        .map_err(Error::green("reading the columns of the replicated tables"))?;
    let major: i32 =
        fenced.query_one("SELECT current_setting('server_version_num')::int / 10000", &[]).await.map_err(Error::blue("reading the server version"))?.get(0);
    for r in &columns {
        let (column, ty, generated): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let known: bool = fenced.query_one("SELECT to_regtype($1) IS NOT NULL", &[&ty]).await.map_err(Error::blue("looking up a type"))?.get(0);
        if !known {
            problems.push(format!("column {column} is of type {ty}, which the other side does not have"));
        }
        if generated == "v" && major < 18 {
            problems.push(format!("column {column} is generated VIRTUAL, which PostgreSQL {major} does not know"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the way back could not carry what the side traffic moves to holds: {}. Resolve it there, or cut over without a way back \
         (cutover.reverse = false)",
        problems.join("; ")
    )))
}

/// Refreshes on `other` every materialized view that is populated on `fenced` (before the fence:
/// the schema copy creates them empty), views that read other views after those. Returns how many.
pub async fn refresh_materialized_views(fenced: &Client, other: &Client, to: &str) -> Result<usize, Error> {
    let populated: Vec<String> = fenced
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(matviewname) FROM pg_matviews m WHERE ispopulated AND NOT EXISTS \
             (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = format('%I.%I', m.schemaname, m.matviewname)::regclass \
              AND d.deptype = 'e')",
            &[],
        )
        .await
        .map_err(Error::blue("listing the populated materialized views"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut left = populated.clone();
    // A view that reads an unpopulated one fails (55000): refreshed in a later pass.
    while !left.is_empty() {
        let mut failed = Vec::new();
        let mut last = None;
        for view in &left {
            match other.batch_execute(&format!("REFRESH MATERIALIZED VIEW {view}")).await {
                Ok(()) => {}
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {
                    failed.push(view.clone());
                    last = Some(e);
                }
                Err(e) => return Err(Error::sql(Side::Green, format!("refreshing materialized view {view} on {to}"))(e)),
            }
        }
        if failed.len() == left.len() {
            let e = last.map(|e| turnout_sinks::pg::describe_error(&e)).unwrap_or_default();
            return Err(Error::Setup(format!("refreshing the materialized views {} on {to} failed: {e}", failed.join(", "))));
        }
        left = failed;
    }
    Ok(populated.len())
}

/// How often the stream takes blue's inventory again (and compares the partition trees).
const WATCH_INTERVAL: std::time::Duration = super::drift::WATCH_INTERVAL;

/// The inventory of the configured source, its tables selected as `run` selects them; with
/// `with_green`, also what green's server lacks.
pub async fn of_config(config: &crate::config::Config, with_green: bool) -> Result<Inventory, Error> {
    let blue = turnout_sinks::pg::connect(config.source.url.expose()).await.map_err(Error::Sink)?;
    let green = match with_green {
        true => Some(turnout_sinks::pg::connect(config.target.url.expose()).await.map_err(Error::Sink)?),
        false => None,
    };
    let selection = super::drift::selection(&blue, &config.table_filter()?, config.tables.skip_without_identity, Side::Blue).await?;
    take(&blue, green.as_ref(), &selection).await
}

/// While the stream runs: every [`WATCH_INTERVAL`] takes blue's inventory and returns the error naming
/// whatever it now refuses (a table made unlogged, a large object created, a policy that applies to
/// turnout's role), then compares the partition trees ([`super::drift::partition_watch_error`]).
/// It keeps one session to each side between looks (a login every 5 s would cost blue more than the
/// look); failures to look are retried on new sessions, never fatal.
pub async fn watch(config: &crate::config::Config) -> Error {
    let mut sessions: Option<(Client, Client)> = None;
    loop {
        if sessions.is_none() {
            match open_both(config).await {
                Ok(both) => sessions = Some(both),
                Err(e) => tracing::debug!("opening the inventory watch's sessions failed, trying again: {e}"),
            }
        }
        if let Some((blue, green)) = &sessions {
            match look(config, blue, green).await {
                Ok(Some(e)) => return e,
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("taking blue's inventory failed, trying again: {e}");
                    sessions = None;
                }
            }
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

async fn open_both(config: &crate::config::Config) -> Result<(Client, Client), Error> {
    let blue = turnout_sinks::pg::connect(config.source.url.expose()).await.map_err(Error::Sink)?;
    let green = turnout_sinks::pg::connect(config.target.url.expose()).await.map_err(Error::Sink)?;
    Ok((blue, green))
}

/// One look of [`watch`]: the error that stops the stream, if any.
async fn look(config: &crate::config::Config, blue: &Client, green: &Client) -> Result<Option<Error>, Error> {
    let selection = super::drift::selection(blue, &config.table_filter()?, config.tables.skip_without_identity, Side::Blue).await?;
    let inventory = take(blue, None, &selection).await?;
    if let Err(e) = inventory.refusal("replication stops") {
        return Ok(Some(Error::Setup(format!(
            "{e}\nChanges made since it appeared may be missing on green: once fixed, have the tables it names copied again \
             (leave them out with tables.exclude, start turnout, then select them again), or run turnout verify"
        ))));
    }
    super::drift::partition_watch_error(config, blue, green).await
}

/// Takes blue's inventory (`client` is a session to blue), deciding each class against `selection`
/// (the tables `[tables]` selects) and, with `green`, what green's server lacks.
pub async fn take(client: &Client, green: Option<&Client>, selection: &Selection) -> Result<Inventory, Error> {
    take_on(client, Side::Blue, green, selection).await
}

/// [`take`] on `side` (the cutover also reads green's).
async fn take_on(client: &Client, side: Side, green: Option<&Client>, selection: &Selection) -> Result<Inventory, Error> {
    let role = role(client, side).await?;
    let relations = relations(client, side).await?;
    let objects = identified(client, side).await?;
    let unknown = unknown_catalogs(client, side).await?;
    let attached = attached(client, side).await?;
    let elsewhere = elsewhere(client, side).await?;
    let lacks = match green {
        Some(g) => green_lacks(g, &elsewhere.extensions, &elsewhere.collations).await?,
        None => Default::default(),
    };
    Ok(classify(&role, &relations, &objects, &unknown, &attached, &elsewhere, &lacks, selection))
}

/// Groups objects into named classes, each added in the order they were first met.
#[derive(Default)]
struct Grouped {
    order: Vec<(String, Handling)>,
    classes: BTreeMap<(String, Handling), (Class, Vec<String>)>,
}

impl Grouped {
    fn put(&mut self, class: &str, handling: Handling, what: &str, fix: Option<String>, object: String) {
        let key = (class.to_string(), handling);
        let entry = self.classes.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            let mut c = Class::new(class, handling, what);
            c.fix = fix;
            (c, Vec::new())
        });
        entry.1.push(object);
    }

    fn into_inventory(mut self, inventory: &mut Inventory) {
        for key in self.order {
            if let Some((class, objects)) = self.classes.remove(&key) {
                inventory.add(class.with_objects(objects));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn classify(
    role: &Role,
    relations: &[Relation],
    objects: &[(String, String, Option<String>)],
    unknown: &[String],
    attached: &[(String, TableName, String, String)],
    elsewhere: &Elsewhere,
    lacks: &(Vec<String>, Vec<String>),
    selection: &Selection,
) -> Inventory {
    // A partition goes wherever its root goes: the selection's left-out tables include partitions.
    let left_out: BTreeSet<TableName> = selection.left_out().into_iter().collect();
    let is_replicated = |r: &Relation| matches!(r.kind, 'r' | 'p') && !left_out.contains(&r.name);
    let mut g = Grouped::default();
    let fix_logged = |t: &TableName| format!("ALTER TABLE {} SET LOGGED on blue (its changes are then logged), or leave it out (tables.exclude)", t.quoted());
    let rls_fix =
        format!("ALTER ROLE \"{}\" BYPASSRLS on blue (as a superuser), or connect as the tables' owner when they do not FORCE ROW LEVEL SECURITY", role.name);
    for r in relations {
        let name = r.name.to_string();
        if r.temporary {
            g.put("temporary table", Handling::LeftOut, "another session's, not part of the database", None, name);
            continue;
        }
        match (r.kind, r.persistence) {
            ('r' | 'p', 'p' | 'u') if !is_replicated(r) => {
                let what = if selection.skipped.iter().any(|(root, _)| *root == r.name) {
                    "left out: no replica identity (tables.skip_without_identity)"
                } else {
                    "left out by [tables]"
                };
                g.put("table not replicated", Handling::LeftOut, what, None, name);
            }
            ('r' | 'p', 'u') => {
                g.put(
                    "unlogged table",
                    Handling::Refused,
                    "never written to the WAL, so logical replication carries none of its changes: green would keep the copy's rows",
                    Some(fix_logged(&r.name)),
                    name,
                );
            }
            ('r' | 'p', 'p') => {
                let (class, what) = if r.partition {
                    ("partition", "streamed through its root")
                } else if r.inherits {
                    ("inheritance child", "streamed as a table of its own; its parents are read ONLY")
                } else if r.kind == 'p' {
                    ("partitioned table", "copied, then streamed; its partitions through it")
                } else if r.parent {
                    ("inheritance parent", "copied and verified ONLY (its children are tables of their own), then streamed")
                } else {
                    ("table", "copied, then streamed")
                };
                g.put(class, Handling::Streamed, what, None, name.clone());
                if r.row_security {
                    let applies = !role.bypasses && (!r.owned || r.forced);
                    if applies {
                        g.put(
                            "table with row-level security",
                            Handling::Refused,
                            "its policies apply to turnout's role, so the copy and verify would read fewer rows than blue holds",
                            Some(rls_fix.clone()),
                            name,
                        );
                    } else {
                        g.put(
                            "table with row-level security",
                            Handling::Streamed,
                            "read with row_security = off: turnout's role bypasses its policies",
                            None,
                            name,
                        );
                    }
                }
            }
            ('v', 'p') => g.put("view", Handling::Copied, "created with the schema, compared at the cutover", None, name),
            ('m', 'p') => g.put(
                "materialized view",
                Handling::AtCutover,
                "created with the schema; refreshed on green before the fence when blue's is populated",
                None,
                name,
            ),
            ('m', 'u') => g.put(
                "unlogged materialized view",
                Handling::AtCutover,
                "created with the schema; refreshed on green before the fence when blue's is populated",
                None,
                name,
            ),
            ('S', 'p' | 'u') => g.put("sequence", Handling::AtCutover, "created with the schema; moved ahead of blue's value at the cutover", None, name),
            ('i' | 'I', _) => g.put("index", Handling::Copied, "created with the schema, compared at the cutover", None, name),
            ('c', _) => g.put("composite type", Handling::Copied, "created with the schema", None, name),
            ('f', _) => g.put("foreign table", Handling::Copied, "created with the schema; its rows stay on the foreign server", None, name),
            (kind, persistence) => g.put(
                &format!("relation of kind '{kind}' ({persistence})"),
                Handling::Refused,
                "a kind of relation turnout does not know",
                Some("leave it out of the database turnout replicates, or drop it".into()),
                name,
            ),
        }
    }
    // Owners and grants: the schema copy runs without them (pg_dump --no-owner --no-privileges).
    let owners: BTreeSet<&str> = relations.iter().filter(|r| !r.temporary && r.owner != role.name).map(|r| r.owner.as_str()).collect();
    for owner in owners {
        g.put(
            "owner",
            Handling::Operator,
            "green's copies are owned by the role turnout connects as",
            Some(
                "give green's objects blue's owners before the cutover (ALTER … OWNER TO …), after creating the roles on green (pg_dumpall --roles-only)"
                    .into(),
            ),
            owner.to_string(),
        );
    }
    for r in relations.iter().filter(|r| r.granted && !r.temporary) {
        g.put(
            "privileges",
            Handling::Operator,
            "GRANTs are not copied with the schema",
            Some("grant the same on green before the cutover (pg_dump --schema-only --section=pre-data lists them as GRANT statements)".into()),
            r.name.to_string(),
        );
    }
    for (kind, table, name, enabled) in attached {
        if !relations.iter().any(|r| r.name == *table && is_replicated(r)) && !relations.iter().any(|r| r.name == *table && matches!(r.kind, 'v' | 'm' | 'f')) {
            continue;
        }
        let object = format!("{name} on {table}");
        if matches!(kind.as_str(), "trigger" | "rule") && matches!(enabled.as_str(), "A" | "R") {
            g.put(
                &format!("{kind} that fires for replicated rows"),
                Handling::Refused,
                "enabled ALWAYS or REPLICA, so on green it would fire again for every row turnout applies",
                Some(format!("ALTER TABLE {} ENABLE {} {name} on blue (an ordinary {kind}), or drop it", table.quoted(), kind.to_uppercase())),
                object,
            );
        } else {
            g.put(kind, Handling::Copied, "created with the schema; does not fire for turnout's apply", None, object);
        }
    }
    for (kind, identity, _) in objects {
        let (handling, what, fix): (Handling, &str, Option<String>) = match kind.as_str() {
            "type"
            | "schema"
            | "cast"
            | "collation"
            | "conversion"
            | "language"
            | "operator"
            | "operator class"
            | "operator family"
            | "access method"
            | "text search parser"
            | "text search dictionary"
            | "text search template"
            | "text search configuration"
            | "transform"
            | "foreign-data wrapper"
            | "server"
            | "user mapping"
            | "aggregate" => (Handling::Copied, "created with the schema", None),
            "function" | "procedure" => (Handling::Copied, "created with the schema, compared at the cutover", None),
            "event trigger" => (Handling::Copied, "created with the schema; fires on green for DDL there", None),
            "extension" if lacks.0.iter().any(|e| e.split(' ').next() == Some(identity.as_str())) => (
                Handling::Refused,
                "green's server does not have it, so the schema copy cannot create it",
                Some(format!("install the extension {identity} on green's server (its package for green's PostgreSQL version)")),
            ),
            "extension" => (Handling::Copied, "created on green with CREATE EXTENSION (green's version of it)", None),
            "publication" if identity.starts_with("turnout_") => continue,
            "publication" => (
                Handling::Operator,
                "not copied: a downstream consumer reads it",
                Some("create it on green before the cutover as on blue (pg_dump --schema-only prints its CREATE PUBLICATION)".into()),
            ),
            "default acl" => {
                (Handling::Operator, "default privileges are not copied", Some("run the same ALTER DEFAULT PRIVILEGES on green before the cutover".into()))
            }
            _ => (
                Handling::Refused,
                "a kind of object turnout does not know",
                Some("drop it on blue, or move this database without turnout; turnout cannot tell whether green would be the same".into()),
            ),
        };
        g.put(kind, handling, what, fix, identity.clone());
    }
    for catalog in unknown {
        g.put(
            "objects of an unknown catalog",
            Handling::Refused,
            "a catalog turnout does not know holds user objects",
            Some("move this database with a turnout that knows this server version".into()),
            catalog.clone(),
        );
    }
    for collation in &lacks.1 {
        g.put(
            "collation green lacks",
            Handling::Refused,
            "columns use it and green's server does not have it",
            Some("install the locale on green's server (locale-gen, or an ICU collation) and run pg_import_system_collations".into()),
            collation.clone(),
        );
    }
    let mut inventory = Inventory::default();
    g.into_inventory(&mut inventory);
    let (count, named) = &elsewhere.large_objects;
    inventory.add(
        Class::new(
            "large object",
            Handling::Refused,
            "logical replication carries no large object and the copy takes none: green's rows would name objects that do not exist",
        )
        .with_fix("store them in bytea columns (lo_get), or unlink them (lo_unlink) if nothing reads them")
        .with_count(named.clone(), *count),
    );
    inventory.add(
        Class::new("subscription", Handling::Operator, "blue replicates from another server; green does not")
            .with_fix("at the cutover create the subscription on green (copy_data = false, from where blue's stopped) and drop it on blue")
            .with_objects(elsewhere.subscriptions.clone()),
    );
    inventory.add(
        Class::new("logical replication slot", Handling::Operator, "a downstream consumer of blue's changes; it follows the cutover only when carried")
            .with_fix("carry it with a [[handover]] entry (slot = its name): the cutover makes its slot on green at the hand-off; `turnout check` says which are carried")
            .with_objects(elsewhere.logical_slots.clone()),
    );
    inventory.add(
        Class::new("physical replication slot", Handling::Operator, "a standby or backup of blue; it does not follow the cutover")
            .with_fix("build green's standbys before the cutover")
            .with_objects(elsewhere.physical_slots.clone()),
    );
    inventory.add(
        Class::new("database setting", Handling::Operator, "ALTER DATABASE … SET is not copied")
            .with_fix("run the same ALTER DATABASE (or ALTER ROLE … IN DATABASE) … SET on green")
            .with_objects(elsewhere.settings.clone()),
    );
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{select, CatalogTable, TableFilter};

    fn rel(schema: &str, name: &str, kind: char, persistence: char) -> Relation {
        Relation {
            name: TableName::new(schema, name),
            kind,
            persistence,
            partition: false,
            inherits: false,
            parent: false,
            row_security: false,
            forced: false,
            owned: true,
            temporary: false,
            owner: "turnout".into(),
            granted: false,
        }
    }

    fn selection(tables: &[&str], exclude: &[&str]) -> Selection {
        let listing = tables.iter().map(|t| CatalogTable { name: TableName::new("public", *t), parent: None, no_identity: false, readable: true }).collect();
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        select(listing, &TableFilter::new(None, &exclude).expect("filter")).expect("selection")
    }

    fn classes(i: &Inventory) -> Vec<(String, Handling, usize)> {
        i.classes.iter().map(|c| (c.class.clone(), c.handling, c.objects.len())).collect()
    }

    #[test]
    fn tables_are_classed_by_kind_persistence_and_selection() {
        let role = Role { name: "turnout".into(), bypasses: false };
        let mut child = rel("public", "child", 'r', 'p');
        child.inherits = true;
        let mut parent = rel("public", "parent", 'r', 'p');
        parent.parent = true;
        let mut tmp = rel("pg_temp_3", "scratch", 'r', 't');
        tmp.temporary = true;
        let relations = vec![
            parent,
            child,
            rel("public", "jobs", 'r', 'u'),
            rel("public", "old", 'r', 'p'),
            rel("public", "v", 'v', 'p'),
            rel("public", "mv", 'm', 'p'),
            rel("public", "weird", 'x', 'p'),
            tmp,
        ];
        let sel = selection(&["parent", "child", "jobs", "old"], &["public.old"]);
        let i = classify(&role, &relations, &[], &[], &[], &Elsewhere::default(), &Default::default(), &sel);
        let c = classes(&i);
        for expected in [
            ("inheritance parent".to_string(), Handling::Streamed, 1),
            ("inheritance child".into(), Handling::Streamed, 1),
            ("unlogged table".into(), Handling::Refused, 1),
            ("table not replicated".into(), Handling::LeftOut, 1),
            ("view".into(), Handling::Copied, 1),
            ("materialized view".into(), Handling::AtCutover, 1),
            ("relation of kind 'x' (p)".into(), Handling::Refused, 1),
            ("temporary table".into(), Handling::LeftOut, 1),
        ] {
            assert!(c.contains(&expected), "{expected:?} missing from {c:?}");
        }
        let e = i.refusal("replication cannot start").expect_err("refused").to_string();
        assert!(e.contains("ALTER TABLE \"public\".\"jobs\" SET LOGGED"), "{e}");
    }

    #[test]
    fn row_level_security_is_refused_unless_the_role_bypasses_it() {
        let mut t = rel("public", "tenants", 'r', 'p');
        t.row_security = true;
        t.forced = true;
        let sel = selection(&["tenants"], &[]);
        let plain = Role { name: "repl".into(), bypasses: false };
        let i = classify(&plain, std::slice::from_ref(&t), &[], &[], &[], &Elsewhere::default(), &Default::default(), &sel);
        let e = i.refusal("x").expect_err("forced RLS on the owner").to_string();
        assert!(e.contains("ALTER ROLE \"repl\" BYPASSRLS") && e.contains("public.tenants"), "{e}");
        let bypass = Role { name: "repl".into(), bypasses: true };
        let i = classify(&bypass, std::slice::from_ref(&t), &[], &[], &[], &Elsewhere::default(), &Default::default(), &sel);
        assert!(i.refusal("x").is_ok());
        // The owner, without FORCE, is not subject to the policies.
        t.forced = false;
        let i = classify(&plain, std::slice::from_ref(&t), &[], &[], &[], &Elsewhere::default(), &Default::default(), &sel);
        assert!(i.refusal("x").is_ok());
        t.owned = false;
        let i = classify(&plain, std::slice::from_ref(&t), &[], &[], &[], &Elsewhere::default(), &Default::default(), &sel);
        assert!(i.refusal("x").is_err(), "not the owner: the policies apply");
    }

    #[test]
    fn an_unknown_kind_or_catalog_and_large_objects_are_refused() {
        let role = Role { name: "r".into(), bypasses: true };
        let objects = vec![
            ("function".to_string(), "public.f(integer)".to_string(), Some("public".to_string())),
            ("property graph".to_string(), "public.g".to_string(), Some("public".to_string())),
            ("publication".to_string(), "turnout_abc".to_string(), None),
            ("publication".to_string(), "cdc".to_string(), None),
        ];
        let elsewhere = Elsewhere { large_objects: (3, vec!["16500".into()]), ..Elsewhere::default() };
        let i = classify(&role, &[], &objects, &["pg_catalog.pg_propgraph".into()], &[], &elsewhere, &Default::default(), &selection(&[], &[]));
        let c = classes(&i);
        assert!(c.contains(&("function".into(), Handling::Copied, 1)), "{c:?}");
        assert!(c.contains(&("property graph".into(), Handling::Refused, 1)), "{c:?}");
        assert!(c.contains(&("publication".into(), Handling::Operator, 1)), "turnout's own publication is not listed: {c:?}");
        assert!(c.contains(&("objects of an unknown catalog".into(), Handling::Refused, 1)), "{c:?}");
        let lo = i.classes.iter().find(|c| c.class == "large object").expect("large objects");
        assert_eq!((lo.count(), lo.handling), (3, Handling::Refused));
    }

    #[test]
    fn triggers_that_fire_for_replicated_rows_are_refused_and_others_copied() {
        let role = Role { name: "r".into(), bypasses: true };
        let t = rel("public", "t", 'r', 'p');
        let attached = vec![
            ("trigger".to_string(), TableName::new("public", "t"), "audit".to_string(), "O".to_string()),
            ("trigger".to_string(), TableName::new("public", "t"), "always".to_string(), "A".to_string()),
            ("policy".to_string(), TableName::new("public", "elsewhere"), "p".to_string(), String::new()),
        ];
        let i = classify(&role, &[t], &[], &[], &attached, &Elsewhere::default(), &Default::default(), &selection(&["t"], &[]));
        let c = classes(&i);
        assert!(c.contains(&("trigger".into(), Handling::Copied, 1)), "{c:?}");
        assert!(c.contains(&("trigger that fires for replicated rows".into(), Handling::Refused, 1)), "{c:?}");
        assert!(!c.iter().any(|(k, _, _)| k == "policy"), "a policy on a table that is not replicated is not counted: {c:?}");
    }
}
