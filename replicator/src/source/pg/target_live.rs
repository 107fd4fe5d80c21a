//! A PostgreSQL green's side of a composed pair's live verify ([`LiveGreen`]): a session in a
//! `REPEATABLE READ` snapshot taken at once, a key range printed by green as the canonical text of
//! each value (the same text plain `verify` digests).

use super::target::{canonical_sql, PgTarget};
use crate::config::Config;
use crate::error::{Error, Side};
use crate::source::compose::live::{Each, KeyRange, LiveGreen};
use crate::source::compose::GreenTable;
use crate::source::contract::compare::HoldDriver;
use std::time::Duration;
use tokio_postgres::Client;
use turnout_connect::pg::PgConnection;
use turnout_decoders::pg::types::oid;
use turnout_decoders::schema::{quote_ident, Column, TableName};
use turnout_decoders::Position;
use turnout_sinks::pg::qualified;

/// A green session inside its snapshot.
#[allow(missing_debug_implementations)]
pub(crate) struct Reader(Client);

/// `numeric`'s type modifier for a scale of 0 (`numeric(p, 0)`: `(p << 16 | 0) + 4`) with at most 38
/// digits, so that every value is a 128-bit integer.
fn whole_numeric(modifier: i32) -> bool {
    modifier >= 4 && (modifier - 4) & 0xffff == 0 && (modifier - 4) >> 16 <= 38
}

impl LiveGreen for PgTarget {
    type Reader = Reader;

    /// Row security off: verify reads every row, whatever policies green has.
    async fn connect(&self) -> Result<Reader, Error> {
        Ok(Reader(super::verify::unfiltered(self.url(), Side::Green).await?))
    }

    async fn begin(&self, reader: &mut Reader) -> Result<(), Error> {
        // The snapshot is taken by the first statement, at once.
        reader
            .0
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1")
            .await
            .map_err(Error::sql(Side::Green, "beginning verify's snapshot"))
    }

    fn integer(column: &Column) -> bool {
        match &column.ty {
            turnout_decoders::schema::ColumnType::Pg { oid: o, modifier, .. } => {
                matches!(*o, oid::INT2 | oid::INT4 | oid::INT8) || (*o == oid::NUMERIC && whole_numeric(*modifier))
            }
            turnout_decoders::schema::ColumnType::MySql(_) => false,
        }
    }

    async fn key_at(&self, reader: &mut Reader, table: &TableName, range: &KeyRange, n: i64) -> Result<Option<Vec<i128>>, Error> {
        let texts: Vec<String> = range.columns.iter().map(|c| format!("{}::text", quote_ident(c))).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1 OFFSET {}",
            texts.join(", "),
            qualified(table),
            range.condition(quote_ident),
            range.order(quote_ident),
            (n - 1).max(0)
        );
        let row = reader.0.query_opt(sql.as_str(), &[]).await.map_err(Error::sql(Side::Green, format!("reading the keys of {table}")))?;
        row.map(|r| {
            (0..range.columns.len())
                .map(|j| {
                    r.get::<_, Option<String>>(j)
                        .and_then(|t| t.parse::<i128>().ok())
                        .ok_or_else(|| Error::Internal(format!("verify read a key of green's {table} that is not an integer")))
                })
                .collect()
        })
        .transpose()
    }

    async fn key_span(&self, reader: &mut Reader, table: &TableName, column: &str) -> Result<Option<(i128, i128)>, Error> {
        let c = quote_ident(column);
        let sql = format!("SELECT min({c})::text, max({c})::text FROM {}", qualified(table));
        let row = reader.0.query_one(sql.as_str(), &[]).await.map_err(Error::sql(Side::Green, format!("reading the key range of {table}")))?;
        let parse = |t: Option<String>| t.and_then(|t| t.parse::<i128>().ok());
        Ok(parse(row.get(0)).zip(parse(row.get(1))))
    }

    async fn exported<H: HoldDriver>(&self, config: &Config, hold: &H, armed: bool, readers: &[Reader], slot_timeout: Duration) -> Result<Position, Error> {
        let mut options = config.target_options()?;
        options.application_name = format!("turnout verify {}", std::process::id());
        let mut replication = PgConnection::connect(&options, true).await.map_err(Error::Source)?;
        let sessions: Vec<&Client> = readers.iter().map(|r| &r.0).collect();
        let imported = super::live::import_slot_snapshot(&mut replication, hold, armed, &sessions, &options.application_name, slot_timeout).await;
        // The temporary slot goes with its connection: the sessions hold the snapshot now.
        replication.close().await;
        Ok(Position::Pg(imported?))
    }

    async fn end(&self, readers: &[Reader]) -> Result<(), Error> {
        for reader in readers {
            reader.0.batch_execute("ROLLBACK").await.map_err(Error::sql(Side::Green, "ending verify's snapshot"))?;
        }
        Ok(())
    }

    async fn visit(&self, reader: &mut Reader, table: &GreenTable, range: &KeyRange, each: Each<'_, Vec<Option<String>>>) -> Result<(), Error> {
        use futures_util::TryStreamExt;
        let name = &table.schema.name;
        let columns = table.schema.columns.iter().map(canonical_sql).collect::<Result<Vec<_>, _>>()?;
        let sql = format!("SELECT {} FROM {} WHERE {}", columns.join(", "), qualified(name), range.condition(quote_ident));
        let what = format!("reading {name} in verify's snapshot");
        let none: [&str; 0] = [];
        let rows = reader.0.query_raw(sql.as_str(), none).await.map_err(Error::sql(Side::Green, what.clone()))?;
        futures_util::pin_mut!(rows);
        while let Some(row) = rows.try_next().await.map_err(Error::sql(Side::Green, what.clone()))? {
            each((0..columns.len()).map(|j| row.get::<_, Option<String>>(j)).collect())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_numeric_of_scale_zero_is_ranged_as_an_integer() {
        // numeric(20, 0), as an unsigned BIGINT maps, and numeric(10, 2).
        assert!(whole_numeric((20 << 16) + 4));
        assert!(!whole_numeric(((10 << 16) | 2) + 4));
        assert!(!whole_numeric(-1), "a numeric without a modifier may hold fractions");
        assert!(whole_numeric((38 << 16) + 4) && !whole_numeric((39 << 16) + 4), "DECIMAL(39,0) is beyond 128 bits: compared whole");
    }
}
