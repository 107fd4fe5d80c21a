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
//! | view, index, composite type, foreign table, type, function, procedure, aggregate, schema, operator…, extension, trigger, rule, policy, statistics object, event trigger | copied with the schema, made equal by definition at the cutover ([`super::definitions`]) |
//! | trigger or rule enabled `ALWAYS`/`REPLICA` | refused: it would fire again for turnout's apply on green |
//! | sequence | values moved ahead at the cutover |
//! | materialized view | refreshed on green before the fence; its rows compared with blue's there and inside the pause (frozen on blue: refused) |
//! | extension green's server lacks | refused |
//! | large object | refused: logical replication carries none |
//! | publication, subscription, logical or physical slot (not turnout's), default privileges, grants, owners | the operator's (named, with the command) |
//! | database settings | made equal at the cutover with the definitions |
//! | an unknown relation kind, object kind or catalog | refused |

use crate::error::{Error, Side};
mod classify;

use crate::source::contract::inventory::Inventory;
use crate::tables::Selection;
use classify::classify;
use std::collections::BTreeSet;
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
           AND COALESCE(i.schema, '') NOT LIKE 'pg\\_temp\\_%' AND COALESCE(i.schema, '') NOT LIKE 'pg\\_toast%' \
           AND i.identity NOT IN ('public.turnout_truncate_note()', 'public.turnout_truncate_root()')",
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
      WHERE NOT t.tgisinternal AND t.oid >= 16384 AND t.tgname NOT IN ('turnout_truncate', 'turnout_truncate_end') \
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
/// side's inventory refuses nothing. Returns it, whose digest the certificate records. Whether the
/// `other` side has every object of a class the schema copy or the cutover brings over, defined
/// alike, is the definitions' settling's ([`super::definitions`]), after the lag wait.
pub async fn before_fence(fenced: &Client, other: &Client, filter: &crate::tables::TableFilter, skip_without_identity: bool) -> Result<Inventory, Error> {
    let selection = super::drift::selection(fenced, filter, skip_without_identity, Side::Blue).await?;
    let inventory = take(fenced, Some(other), &selection).await?;
    inventory.refusal("the cutover cannot go on")?;
    Ok(inventory)
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
    // A view the schema copy left out with the tables it reads is not on the other side.
    let mut present = Vec::new();
    for view in populated {
        let there: bool = other
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&view])
            .await
            .map_err(Error::sql(Side::Green, format!("looking up materialized view {view} on {to}")))?
            .get(0);
        if there {
            present.push(view);
        }
    }
    let populated = present;
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
    let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
    let green = match with_green {
        true => Some(crate::source::pg::session(config.target.url.expose(), config.target_side()).await?),
        false => None,
    };
    let selection = super::drift::selection(&blue, &config.table_filter()?, config.tables.skip_without_identity, Side::Blue).await?;
    take(&blue, green.as_ref(), &selection).await
}

/// While the stream runs: every [`WATCH_INTERVAL`] notes the TRUNCATE of partitions made since
/// ([`super::truncate`]), starts the stream again when a selected table is not published yet (created
/// while streaming, under a table-list publication), takes blue's inventory and returns the error
/// naming whatever it now refuses (a table made unlogged, a large object created, a policy that
/// applies to turnout's role), then compares the partition trees
/// ([`super::drift::partition_watch_error`]).
/// It keeps one session to each side between looks (a login every 5 s would cost blue more than the
/// look); failures to look are retried on new sessions, never fatal.
pub async fn watch(config: &crate::config::Config, publication: &str) -> Error {
    let mut sessions: Option<(Client, Client)> = None;
    loop {
        if sessions.is_none() {
            match open_both(config).await {
                Ok(both) => sessions = Some(both),
                Err(e) => tracing::debug!("opening the inventory watch's sessions failed, trying again: {e}"),
            }
        }
        if let Some((blue, green)) = &sessions {
            match look(config, publication, blue, green).await {
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
    let blue = crate::source::pg::session(config.source.url.expose(), config.source_side()).await?;
    let green = crate::source::pg::session(config.target.url.expose(), config.target_side()).await?;
    Ok((blue, green))
}

/// One look of [`watch`]: the error that stops the stream, if any.
async fn look(config: &crate::config::Config, publication: &str, blue: &Client, green: &Client) -> Result<Option<Error>, Error> {
    let selection = super::drift::selection(blue, &config.table_filter()?, config.tables.skip_without_identity, Side::Blue).await?;
    // A table created while streaming that a table-list publication does not publish (a role that may
    // not publish FOR ALL TABLES): its rows would never reach green. The stream starts again, which
    // adds it to the publication and copies it (before the publication publishes it, its changes are
    // dropped until its copy is on green).
    let unpublished = super::setup::unpublished_by(blue, publication, &selection).await?;
    if !unpublished.is_empty() {
        let tables = unpublished.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        return Ok(Some(Error::Resync(format!("blue has tables the stream does not carry yet ({tables}): starting again to publish and copy them"))));
    }
    // A partition made since notes its TRUNCATE too; one turnout may not give a trigger stops the stream.
    if let Err(e) = super::truncate::ensure(blue, &selection.tables, config.source_side()).await {
        if matches!(e, Error::Setup(_)) {
            return Ok(Some(e));
        }
        return Err(e);
    }
    if let Some(e) = refused(blue, &selection).await? {
        return Ok(Some(e));
    }
    // The tables this look listed: one created since is the next look's (first its publication).
    let partitions = super::drift::partition_watch_error(blue, green, &selection.tables).await?;
    if partitions.is_some() {
        // A relation's kind or persistence changed after the inventory above was taken (a table made
        // unlogged just then): the inventory names that better than a partition tree does.
        if let Some(e) = refused(blue, &selection).await? {
            return Ok(Some(e));
        }
    }
    Ok(partitions)
}

/// The error that stops the stream when blue's inventory now refuses something in `selection`.
async fn refused(blue: &Client, selection: &Selection) -> Result<Option<Error>, Error> {
    let inventory = take(blue, None, selection).await?;
    Ok(inventory.refusal("replication stops").err().map(|e| {
        Error::Setup(format!(
            "{e}\nChanges made since it appeared may be missing on green: once fixed, have the tables it names copied again \
             (leave them out with tables.exclude, start turnout, then select them again), or run turnout verify"
        ))
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::contract::inventory::Handling;
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
