//! A mark of every definition in one database's catalogs, taken when the definitions are settled and
//! again inside the write pause: equal marks prove nothing was defined, altered or dropped in
//! between (compared on the same server, so its version never matters).
//!
//! Every catalog that holds what the schema copy brings over is read for the database's own objects
//! (oid ≥ 16384): each row as JSON without what changes with the data rather than the definition
//! (a relation's file node and size statistics, the flags `VACUUM` clears, `REFRESH` filling a
//! materialized view) or belongs to the operator (privileges, which turnout does not copy), hashed.
//! A `TRUNCATE` or `VACUUM FULL` therefore leaves the mark alone; `CREATE INDEX`, `ALTER FUNCTION`,
//! `ALTER TYPE … ADD VALUE` or `ALTER DATABASE … SET` change it. Database settings leave out
//! `default_transaction_read_only`, which the read-only fence itself sets.

use crate::error::{Error, Side};
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// A catalog read for the mark: its name, the key of a row, the object a row belongs to (class,
/// object, sub-object, for `pg_describe_object`), and which rows are the database's own; `version`
/// is what tells one version of a row from another for the fingerprint (`xmin` and `ctid`, except
/// for a view over a catalog, which has neither).
struct Catalog {
    name: &'static str,
    key: &'static str,
    object: &'static str,
    own: &'static str,
    version: &'static str,
}

const ROW_VERSION: &str = "t.xmin::text || t.ctid::text";

const fn oid_catalog(name: &'static str) -> Catalog {
    Catalog { name, key: "t.oid::text", object: "", own: "t.oid >= 16384", version: ROW_VERSION }
}

const CATALOGS: &[Catalog] = &[
    oid_catalog("pg_namespace"),
    oid_catalog("pg_class"),
    Catalog {
        name: "pg_attribute",
        key: "t.attrelid::text || '.' || t.attnum",
        object: "'pg_class'::regclass, t.attrelid, t.attnum",
        own: "t.attrelid >= 16384",
        version: ROW_VERSION,
    },
    oid_catalog("pg_attrdef"),
    oid_catalog("pg_constraint"),
    Catalog {
        name: "pg_index",
        key: "t.indexrelid::text",
        object: "'pg_class'::regclass, t.indexrelid, 0",
        own: "t.indexrelid >= 16384",
        version: ROW_VERSION,
    },
    Catalog {
        name: "pg_inherits",
        key: "t.inhrelid::text || '.' || t.inhseqno",
        object: "'pg_class'::regclass, t.inhrelid, 0",
        own: "t.inhrelid >= 16384",
        version: ROW_VERSION,
    },
    Catalog {
        name: "pg_partitioned_table",
        key: "t.partrelid::text",
        object: "'pg_class'::regclass, t.partrelid, 0",
        own: "t.partrelid >= 16384",
        version: ROW_VERSION,
    },
    oid_catalog("pg_trigger"),
    oid_catalog("pg_rewrite"),
    oid_catalog("pg_policy"),
    oid_catalog("pg_proc"),
    Catalog {
        name: "pg_aggregate",
        key: "t.aggfnoid::oid::text",
        object: "'pg_proc'::regclass, t.aggfnoid::oid, 0",
        own: "t.aggfnoid::oid >= 16384",
        version: ROW_VERSION,
    },
    oid_catalog("pg_type"),
    Catalog { name: "pg_enum", key: "t.oid::text", object: "'pg_type'::regclass, t.enumtypid, 0", own: "t.oid >= 16384", version: ROW_VERSION },
    Catalog { name: "pg_range", key: "t.rngtypid::text", object: "'pg_type'::regclass, t.rngtypid, 0", own: "t.rngtypid >= 16384", version: ROW_VERSION },
    Catalog { name: "pg_sequence", key: "t.seqrelid::text", object: "'pg_class'::regclass, t.seqrelid, 0", own: "t.seqrelid >= 16384", version: ROW_VERSION },
    oid_catalog("pg_statistic_ext"),
    Catalog {
        name: "pg_description",
        key: "t.classoid::text || '.' || t.objoid || '.' || t.objsubid",
        object: "t.classoid, t.objoid, t.objsubid",
        own: "t.objoid >= 16384",
        version: ROW_VERSION,
    },
    Catalog {
        name: "pg_seclabel",
        key: "t.classoid::text || '.' || t.objoid || '.' || t.objsubid || '.' || t.provider",
        object: "t.classoid, t.objoid, t.objsubid",
        own: "t.objoid >= 16384",
        version: ROW_VERSION,
    },
    oid_catalog("pg_operator"),
    oid_catalog("pg_opclass"),
    oid_catalog("pg_opfamily"),
    oid_catalog("pg_amop"),
    oid_catalog("pg_amproc"),
    oid_catalog("pg_am"),
    oid_catalog("pg_cast"),
    oid_catalog("pg_collation"),
    oid_catalog("pg_conversion"),
    oid_catalog("pg_language"),
    oid_catalog("pg_ts_config"),
    Catalog {
        name: "pg_ts_config_map",
        key: "t.mapcfg::text || '.' || t.maptokentype || '.' || t.mapseqno",
        object: "'pg_ts_config'::regclass, t.mapcfg, 0",
        own: "t.mapcfg >= 16384",
        version: ROW_VERSION,
    },
    oid_catalog("pg_ts_dict"),
    oid_catalog("pg_ts_parser"),
    oid_catalog("pg_ts_template"),
    oid_catalog("pg_foreign_data_wrapper"),
    oid_catalog("pg_foreign_server"),
    Catalog { name: "pg_foreign_table", key: "t.ftrelid::text", object: "'pg_class'::regclass, t.ftrelid, 0", own: "t.ftrelid >= 16384", version: ROW_VERSION },
    // Only superusers read pg_user_mapping itself (its options hold passwords); the view hides them.
    Catalog {
        name: "pg_user_mappings",
        key: "t.umid::text",
        object: "'pg_user_mapping'::regclass, t.umid, 0",
        own: "t.umid >= 16384",
        version: "to_jsonb(t)::text",
    },
    oid_catalog("pg_extension"),
    oid_catalog("pg_event_trigger"),
    oid_catalog("pg_transform"),
];

/// What changes with the data, with maintenance or with privileges, not with a definition.
const NOT_DEFINITION: &str = "'{relfilenode,relpages,reltuples,relallvisible,relallfrozen,relfrozenxid,relminmxid,relhasindex,relhasrules,\
     relhastriggers,relhassubclass,relispopulated,relacl,proacl,typacl,nspacl,lanacl,fdwacl,srvacl,attacl}'::text[]";

/// One fingerprint per catalog of its rows' versions (count, and the XOR of a hash of each row
/// version's `xmin` and `ctid`): any row a statement inserts, updates or deletes changes it. What the
/// write pause reads: no row is printed or hashed whole, so it costs milliseconds (7 ms for 500
/// tables with their columns, indexes and views). Maintenance that rewrites a row without changing
/// a definition (`TRUNCATE`'s new file node) changes it too; then the rows are compared whole.
fn fingerprint_sql() -> String {
    let mut parts: Vec<String> = CATALOGS
        .iter()
        .map(|c| {
            format!(
                "SELECT '{name}'::text, count(*), bit_xor(hashtext({version})) FROM pg_catalog.{name} t WHERE {own}",
                name = c.name,
                own = c.own,
                version = c.version
            )
        })
        .collect();
    parts.push(
        // The read-only fence writes its own setting here: the others are compared, not the row.
        "SELECT 'pg_db_role_setting'::text, count(*), bit_xor(hashtext(s.setrole::text || array_to_string(ARRAY(SELECT x FROM unnest(s.setconfig) x \
           WHERE x NOT LIKE 'default\\_transaction\\_read\\_only=%' ORDER BY x), chr(10)))) FROM pg_db_role_setting s \
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND EXISTS (SELECT 1 FROM unnest(s.setconfig) x WHERE x NOT LIKE 'default\\_transaction\\_read\\_only=%')"
            .to_owned(),
    );
    parts.join(" UNION ALL ")
}

/// The rows of every catalog: (catalog, key, hash of the row, the object it belongs to).
fn rows_sql() -> String {
    let mut parts: Vec<String> = CATALOGS
        .iter()
        .map(|c| {
            let object = if c.object.is_empty() { format!("'{}'::regclass, t.oid, 0", c.name) } else { c.object.to_owned() };
            format!(
                "SELECT '{name}'::text, {key}, md5((to_jsonb(t) - {NOT_DEFINITION})::text), pg_describe_object({object}) FROM pg_catalog.{name} t WHERE {own}",
                name = c.name,
                key = c.key,
                own = c.own
            )
        })
        .collect();
    parts.push(
        "SELECT 'pg_db_role_setting'::text, s.setrole::text, \
           md5(array_to_string(ARRAY(SELECT x FROM unnest(s.setconfig) x WHERE x NOT LIKE 'default\\_transaction\\_read\\_only=%' ORDER BY x), chr(10))) \
           , 'database settings' || CASE WHEN s.setrole = 0 THEN '' ELSE ' of role ' || \
           COALESCE((SELECT rolname FROM pg_roles WHERE oid = s.setrole), s.setrole::text) END FROM pg_db_role_setting s WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND EXISTS (SELECT 1 FROM unnest(s.setconfig) x WHERE x NOT LIKE 'default\\_transaction\\_read\\_only=%')"
            .to_owned(),
    );
    parts.join(" UNION ALL ")
}

/// The database's definitions, as [`rows_sql`] reads them: (catalog, key) → (hash, object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    rows: BTreeMap<(String, String), (String, String)>,
}

/// The catalogs' row versions as [`fingerprint_sql`] reads them, and the statement that reads them
/// again, prepared on the session it was taken with (so that the pause plans nothing).
#[derive(Clone, Debug)]
pub(crate) struct Fingerprint {
    catalogs: BTreeMap<String, (i64, Option<i32>)>,
    statement: tokio_postgres::Statement,
}

impl Fingerprint {
    /// Prepares the statement on `client` and takes the fingerprint.
    pub async fn take(client: &Client, side: Side) -> Result<Fingerprint, Error> {
        let statement = client.prepare(&fingerprint_sql()).await.map_err(Error::sql(side, format!("preparing the read of {side}'s catalogs")))?;
        let catalogs = read_fingerprint(client, &statement, side).await?;
        Ok(Fingerprint { catalogs, statement })
    }

    /// Whether the catalogs' rows are the versions they were (on the session it was taken with);
    /// with `false`, the fingerprint read now is kept for the caller to adopt.
    pub async fn holds(&self, client: &Client, side: Side) -> Result<Option<Fingerprint>, Error> {
        let now = read_fingerprint(client, &self.statement, side).await?;
        Ok((now != self.catalogs).then(|| Fingerprint { catalogs: now, statement: self.statement.clone() }))
    }
}

async fn read_fingerprint(client: &Client, statement: &tokio_postgres::Statement, side: Side) -> Result<BTreeMap<String, (i64, Option<i32>)>, Error> {
    let rows = client.query(statement, &[]).await.map_err(Error::sql(side, format!("reading {side}'s catalogs for their definitions' mark")))?;
    Ok(rows.iter().map(|r| (r.get::<_, String>(0), (r.get::<_, i64>(1), r.get::<_, Option<i32>>(2)))).collect())
}

impl Mark {
    /// Takes the mark of the database `client` is connected to.
    pub async fn take(client: &Client, side: Side) -> Result<Mark, Error> {
        let rows = client.query(rows_sql().as_str(), &[]).await.map_err(Error::sql(side, format!("reading {side}'s catalogs for their definitions' mark")))?;
        let rows = rows
            .iter()
            .map(|r| {
                let text = |i: usize| r.get::<_, Option<String>>(i).unwrap_or_default();
                ((text(0), text(1)), (text(2), text(3)))
            })
            .collect();
        Ok(Mark { rows })
    }

    /// What differs from `earlier`: each object defined, altered or dropped since, named once.
    pub fn changed_since(&self, earlier: &Mark) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut note = |what: String| {
            if !out.contains(&what) {
                out.push(what);
            }
        };
        for (key, (hash, object)) in &self.rows {
            match earlier.rows.get(key) {
                None => note(format!("{} (created)", name(object, &key.0))),
                Some((before, _)) if before != hash => note(format!("{} (altered)", name(object, &key.0))),
                Some(_) => {}
            }
        }
        for (key, (_, object)) in &earlier.rows {
            if !self.rows.contains_key(key) {
                note(format!("{} (dropped)", name(object, &key.0)));
            }
        }
        out
    }
}

fn name(object: &str, catalog: &str) -> String {
    if object.is_empty() {
        format!("an object in {catalog}")
    } else {
        object.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(rows: &[(&str, &str, &str, &str)]) -> Mark {
        Mark { rows: rows.iter().map(|(c, k, h, o)| ((c.to_string(), k.to_string()), (h.to_string(), o.to_string()))).collect() }
    }

    #[test]
    fn a_mark_names_what_was_created_altered_and_dropped() {
        let before = mark(&[("pg_class", "16400", "a", "view public.v"), ("pg_proc", "16500", "b", "function f()"), ("pg_enum", "16600", "c", "type mood")]);
        let after = mark(&[
            ("pg_class", "16400", "a2", "view public.v"),
            ("pg_enum", "16600", "c", "type mood"),
            ("pg_enum", "16601", "d", "type mood"),
            ("pg_index", "16700", "e", ""),
        ]);
        assert_eq!(
            after.changed_since(&before),
            ["view public.v (altered)", "type mood (created)", "an object in pg_index (created)", "function f() (dropped)"]
        );
        assert!(before.changed_since(&before).is_empty());
    }

    #[test]
    fn every_catalog_is_read_once_and_a_row_is_hashed_without_what_the_data_changes() {
        let sql = rows_sql();
        for c in CATALOGS {
            assert_eq!(sql.matches(&format!("FROM pg_catalog.{} t ", c.name)).count(), 1, "{}", c.name);
        }
        assert!(sql.contains("relfilenode") && sql.contains("relacl") && sql.contains("default\\_transaction\\_read\\_only"));
        assert!(sql.contains("pg_describe_object") && sql.contains("'database settings'"), "{sql}");
        let fingerprint = fingerprint_sql();
        for c in CATALOGS {
            assert_eq!(fingerprint.matches(&format!("FROM pg_catalog.{} t ", c.name)).count(), 1, "{}", c.name);
        }
        assert!(
            !fingerprint.contains("pg_describe_object") && fingerprint.matches("to_jsonb").count() == 1,
            "only the view over user mappings is read whole: {fingerprint}"
        );
    }
}
