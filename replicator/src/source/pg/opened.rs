//! A PostgreSQL green as the side a cutover from another engine moves traffic to
//! ([`OpenedSide`]): its tables compared with what the conversion makes of blue's, and its identity
//! counters moved past blue's `AUTO_INCREMENT` (`setval` on the identity's sequence: it locks only the
//! sequence, and never moves a counter back).

use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::compose::cutover::{Counter, OpenedSide, SideFence};
use crate::source::compose::GreenTable;
use crate::source::contract::procedure::Identity;
use tokio_postgres::Client;
use turnout_cutover::{CounterKind, CounterSync};
use turnout_decoders::schema::quote_ident;
use turnout_decoders::TableName;
use turnout_sinks::pg::qualified;

/// Green's session for a cutover.
#[allow(missing_debug_implementations)]
pub(crate) struct PgOpened {
    client: Client,
    /// A rollback's fence: green's database read-only for applications.
    fence: turnout_cutover::WriteFence,
    /// Green's WAL insert position just before a rollback's sentinel.
    fenced_at: Option<turnout_decoders::Lsn>,
}

/// Each identity of a table in `schemas`: (schema, table, its sequence, the sequence's increment and
/// maximum).
const IDENTITIES: &str = "SELECT n.nspname::text, c.relname::text, d.objid::regclass::text, s.seqincrement, s.seqmax \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_depend d ON d.refobjid = c.oid AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass \
       AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i' \
     JOIN pg_sequence s ON s.seqrelid = d.objid \
     WHERE a.attidentity <> '' AND NOT a.attisdropped AND n.nspname = ANY($1) ORDER BY 1, 2";

impl PgOpened {
    /// What `sql` (a query of one table, `$1` its name) reads from a temporary table made of the
    /// conversion's definitions of `table`, and from green's `table`: both printed by green, so they
    /// compare as text. The temporary table is gone when this returns.
    async fn expected_and_found(&mut self, table: &GreenTable, sql: &str, what: &str) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>), Error> {
        let name = qualified(&table.schema.name);
        let create = format!("BEGIN; CREATE TEMPORARY TABLE turnout_expected ({}) ON COMMIT DROP", table.definitions.join(", "));
        self.client.batch_execute(&create).await.map_err(Error::sql(Side::Green, format!("making the {what} {name} should have")))?;
        let read = async {
            let expected = self.client.query(sql, &[&"pg_temp.turnout_expected"]).await?;
            let found = self.client.query(sql, &[&name]).await?;
            Ok::<_, tokio_postgres::Error>((expected, found))
        }
        .await;
        let _ = self.client.batch_execute("ROLLBACK").await;
        read.map_err(Error::sql(Side::Green, format!("reading the {what} of {name}")))
    }

    async fn identities(&self, schemas: &[String]) -> Result<Vec<(TableName, String, i64, i64)>, Error> {
        let rows = self.client.query(IDENTITIES, &[&schemas]).await.map_err(Error::sql(Side::Green, "reading the identity counters"))?;
        Ok(rows.iter().map(|r| (TableName { schema: r.get(0), name: r.get(1) }, r.get(2), r.get(3), r.get(4))).collect())
    }
}

/// How green's columns differ from the `expected` table's (empty when equal).
fn column_differences(expected: &GreenTable, found: &[(String, i64, i32, bool, bool)]) -> Vec<String> {
    let table = &expected.schema.name;
    let mut out = Vec::new();
    if found.len() != expected.schema.columns.len() {
        let names: Vec<&str> = found.iter().map(|(n, ..)| n.as_str()).collect();
        let want: Vec<&str> = expected.schema.columns.iter().map(|c| c.name.as_str()).collect();
        return vec![format!("{table}: green has columns ({}), the type map makes ({})", names.join(", "), want.join(", "))];
    }
    let wanted = expected.schema.columns.iter().zip(&expected.not_null).zip(&expected.has_default);
    for (((column, not_null), has_default), (name, oid, modifier, green_not_null, green_default)) in wanted.zip(found) {
        let (want_oid, want_modifier) = match &column.ty {
            turnout_decoders::schema::ColumnType::Pg { oid, modifier, .. } => (i64::from(*oid), *modifier),
            turnout_decoders::schema::ColumnType::MySql(_) => continue,
        };
        if *name != column.name {
            out.push(format!("{table}: green's column {name} where the type map makes {}", column.name));
        } else if *oid != want_oid || *modifier != want_modifier {
            out.push(format!("{table}.{name}: green's type (oid {oid}, modifier {modifier}) is not the type map's (oid {want_oid}, modifier {want_modifier})"));
        } else if green_not_null != not_null {
            out.push(format!("{table}.{name}: {} on green, {} on blue", null_word(*green_not_null), null_word(*not_null)));
        } else if has_default.is_some_and(|wanted| wanted != *green_default) {
            let has = |yes: bool| if yes { "a DEFAULT" } else { "no DEFAULT" };
            out.push(format!("{table}.{name}: {} on green, {} on blue", has(*green_default), has(!*green_default)));
        }
    }
    out
}

fn null_word(not_null: bool) -> &'static str {
    if not_null {
        "NOT NULL"
    } else {
        "nullable"
    }
}

impl SideFence for PgOpened {
    async fn check_fence(&mut self) -> Result<(), Error> {
        self.fence.check(&self.client).await.map_err(Error::from)
    }

    async fn fence(&mut self, budget: std::time::Duration) -> Result<String, Error> {
        let report = self.fence.apply(&self.client, budget).await.map_err(Error::from)?;
        let ended = if report.ended_sessions.is_empty() { String::new() } else { format!("; ended {} sessions", report.ended_sessions.len()) };
        Ok(format!("fenced writes on green (read-only) in {} ms{ended}", report.took.as_millis()))
    }

    async fn write_sentinel(&mut self, id: &str) -> Result<(), Error> {
        self.fenced_at = super::cutover::emit_sentinel(&self.client, Side::Green, id).await?;
        Ok(())
    }

    fn committed(&self) -> Option<turnout_decoders::Position> {
        self.fenced_at.map(turnout_decoders::Position::Pg)
    }

    async fn is_fenced(&mut self) -> Result<bool, Error> {
        self.fence.is_fenced(&self.client).await.map_err(Error::from)
    }

    async fn lift(&mut self) -> Result<String, Error> {
        self.fence.undo(&self.client).await.map_err(Error::from)?;
        Ok("undid the fence (read-only): green takes writes again".into())
    }
}

impl PgOpened {
    /// Where green's column defaults are not the conversion's, one line each: both printed by green
    /// (`pg_get_expr`) from green's table and from a temporary table made of the conversion's
    /// definitions, so a default made by hand on green (a column added there to get a stream past a
    /// change) is compared by its value, not only by its presence.
    async fn default_differences(&mut self, table: &GreenTable) -> Result<Vec<String>, Error> {
        const DEFAULTS: &str = "SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
                                JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = $1::text::regclass";
        let name = qualified(&table.schema.name);
        let (expected, found) = self.expected_and_found(table, DEFAULTS, "defaults").await?;
        let pairs =
            |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<std::collections::BTreeMap<_, _>>();
        let (expected, found) = (pairs(expected), pairs(found));
        Ok(expected
            .iter()
            .filter_map(|(column, want)| {
                let have = found.get(column)?;
                (have != want).then(|| {
                    format!(
                        "{}: column {column} defaults to {have} on green, the type map makes {want} of blue's; ALTER TABLE {name} ALTER COLUMN {} SET DEFAULT {want}",
                        table.schema.name,
                        quote_ident(column)
                    )
                })
            })
            .collect())
    }
}

impl OpenedSide for PgOpened {
    async fn connect(config: &Config) -> Result<PgOpened, Error> {
        let client = turnout_sinks::pg::connect(config.target.url.expose()).await.map_err(Error::Sink)?;
        let fence = turnout_cutover::WriteFence::ReadOnly { database: config.target_options()?.database };
        Ok(PgOpened { client, fence, fenced_at: None })
    }

    async fn differences(&mut self, tables: &[GreenTable]) -> Result<Vec<String>, Error> {
        let sql = "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull, a.atthasdef FROM pg_attribute a \
                   WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
        let mut out = Vec::new();
        for table in tables {
            let name = qualified(&table.schema.name);
            let rows = self.client.query(sql, &[&name]).await.map_err(Error::sql(Side::Green, format!("reading the columns of {name}")))?;
            if rows.is_empty() {
                out.push(format!("{}: not on green", table.schema.name));
                continue;
            }
            let found: Vec<(String, i64, i32, bool, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
            out.extend(column_differences(table, &found));
            out.extend(self.default_differences(table).await?);
            // Uniqueness is behaviour: a unique index dropped on green (or added on blue outside its
            // binlog) would let green take rows blue refuses.
            let unique: i64 = self
                .client
                .query_one("SELECT count(*) FROM pg_index WHERE indrelid = to_regclass($1) AND indisunique", &[&name])
                .await
                .map_err(Error::sql(Side::Green, format!("reading the indexes of {name}")))?
                .get(0);
            let keyed = table.schema.replica_identity != turnout_decoders::schema::ReplicaIdentity::Full && table.schema.columns.iter().any(|c| c.is_key);
            let wanted = i64::from(keyed) + i64::try_from(table.after.iter().filter(|s| s.starts_with("CREATE UNIQUE INDEX")).count()).unwrap_or(i64::MAX);
            if unique != wanted {
                out.push(format!("{}: {unique} unique indexes on green, the type map makes {wanted} of blue's", table.schema.name));
            }
        }
        Ok(out)
    }

    async fn counted(&mut self, schemas: &[String]) -> Result<Vec<TableName>, Error> {
        Ok(self.identities(schemas).await?.into_iter().map(|(t, ..)| t).collect())
    }

    async fn counters_ahead(&mut self, blue: &[Counter], margin: i128) -> Result<Vec<CounterSync>, Error> {
        let schemas: Vec<String> = blue.iter().map(|(t, _)| t.schema.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let mut done = Vec::new();
        let identities = self.identities(&schemas).await?;
        // Every identity's next value in one statement (this runs inside the write pause too).
        let sequences: Vec<(String, i64)> = identities.iter().map(|(_, sequence, increment, _)| (sequence.clone(), *increment)).collect();
        let next = turnout_cutover::next_values(&self.client, Side::Green, &sequences).await.map_err(Error::from)?;
        for ((table, sequence, _, max), green_next) in identities.into_iter().zip(next) {
            // A table green counts and blue does not (its counter not shown yet) keeps green's.
            let Some((_, blue_next)) = blue.iter().find(|(t, _)| *t == table) else { continue };
            // The margin stops at the identity's maximum (an INT counter near 2³¹ − 1); blue's own
            // next value beyond it is what blue could not number either.
            if *blue_next > i128::from(max) + 1 {
                return Err(Error::Setup(format!("{table}'s counter on blue ({blue_next}) is beyond its identity's maximum on green ({max})")));
            }
            let wanted = (blue_next + margin).min(i128::from(max));
            let changed = green_next < wanted;
            if changed {
                let to =
                    i64::try_from(wanted).map_err(|_| Error::Setup(format!("{table}'s counter on blue ({blue_next}) is beyond green's bigint identity")))?;
                self.client
                    .execute("SELECT setval($1::text::regclass, $2, false)", &[&sequence, &to])
                    .await
                    .map_err(Error::sql(Side::Green, format!("moving the identity of {table} to {to}")))?;
            }
            done.push(CounterSync {
                kind: CounterKind::AutoIncrement,
                name: table.to_string(),
                blue_next: *blue_next,
                green_next,
                set_to: if changed { wanted } else { green_next },
                changed,
            });
        }
        Ok(done)
    }

    async fn identify(&mut self) -> Identity {
        super::rehearsal::identity(&self.client).await
    }

    /// Green's checks against those of a temporary table made from the conversion's definitions,
    /// both printed by green (`pg_get_constraintdef`), so the comparison is green's own text.
    async fn missing_checks(&mut self, tables: &[GreenTable]) -> Result<Vec<String>, Error> {
        const CHECKS: &str = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'c'";
        let mut out = Vec::new();
        for table in tables {
            let name = qualified(&table.schema.name);
            let (expected, found) = self.expected_and_found(table, CHECKS, "checks").await?;
            let mut found: Vec<String> = found.iter().map(|r| r.get(0)).collect();
            for check in expected.iter().map(|r| r.get::<_, String>(0)) {
                match found.iter().position(|f| *f == check) {
                    Some(at) => {
                        found.swap_remove(at);
                    }
                    None => out.push(format!("{}: green lacks {check}; add it: ALTER TABLE {name} ADD {check}", table.schema.name)),
                }
            }
        }
        Ok(out)
    }

    async fn tables(&mut self, schemas: &[String]) -> Result<Vec<TableName>, Error> {
        let rows = self
            .client
            .query("SELECT schemaname::text, tablename::text FROM pg_tables WHERE schemaname = ANY($1)", &[&schemas])
            .await
            .map_err(Error::sql(Side::Green, "listing green's tables"))?;
        Ok(rows.iter().map(|r| TableName { schema: r.get(0), name: r.get(1) }).collect())
    }

    async fn counters(&mut self, schemas: &[String]) -> Result<Vec<Counter>, Error> {
        let identities = self.identities(schemas).await?;
        let sequences: Vec<(String, i64)> = identities.iter().map(|(_, sequence, increment, _)| (sequence.clone(), *increment)).collect();
        let next = turnout_cutover::next_values(&self.client, Side::Green, &sequences).await.map_err(Error::from)?;
        Ok(identities.into_iter().zip(next).map(|((table, ..), next)| (table, next)).collect())
    }
}
