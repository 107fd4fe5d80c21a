//! A MySQL/MariaDB blue as a [`SourceSide`], whatever green is: the heartbeat table, the tables the
//! configuration selects as the catalog types them, a consistent read at a binlog position, and the
//! binlog stream — the same parts [`super::admin::MySqlAdmin`] uses with a MySQL-family green.

use super::catalog::{select_tables, unreplicable};
use super::{connect, database, qualified, snapshot, MySqlSource};
use crate::config::Config;
use crate::error::{CopyRefusal, Error, SchemaRefusal, Side};
use crate::source::compose::{BlueTable, Snapshot, SourceSide};
use crate::source::{Names, HEARTBEAT_TABLE};
use crate::status::Status;
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use tokio::sync::watch;
use turnout_decoders::{Position, TableName, Value};

/// Blue, a MySQL or MariaDB server.
#[derive(Debug)]
pub(crate) struct MySqlBlue {
    config: Config,
    blue: mysql_async::Opts,
    server_id: u32,
}

/// Columns (name, type as printed) of `table`, in order, and its primary key's columns in key order.
/// A generated column is typed `generated …`, which no type map carries: its values are the
/// server's to compute, and green's would be computed by another engine's rules.
async fn describe(conn: &mut mysql_async::Conn, table: &TableName) -> Result<(Vec<(String, String)>, Vec<String>), Error> {
    // A generation expression, not EXTRA: MySQL's EXTRA says DEFAULT_GENERATED for an expression default.
    let read: Vec<(String, String, i64)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, COALESCE(GENERATION_EXPRESSION, '') <> '' FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's columns", e))?;
    let columns = read.into_iter().map(|(name, ty, generated)| if generated != 0 { (name, format!("generated {ty}")) } else { (name, ty) }).collect();
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| super::sql_error(Side::Blue, "reading a table's primary key", e))?;
    Ok((columns, key))
}

/// A value of a snapshot read as the binlog would carry it; what the read cannot type exactly yet is
/// refused.
fn value(table: &TableName, (column, blue_type): &(String, String), v: mysql_async::Value) -> Result<Value, Error> {
    match v {
        mysql_async::Value::NULL => Ok(Value::Null),
        mysql_async::Value::Int(i) => Ok(Value::Int8(i)),
        mysql_async::Value::UInt(u) => Ok(Value::UInt8(u)),
        _ => Err(SchemaRefusal::NotConverted {
            table: table.to_string(),
            column: column.clone(),
            blue_type: blue_type.clone(),
            from: MySqlBlue::ENGINE,
            to: "green",
        }
        .into()),
    }
}

impl SourceSide for MySqlBlue {
    type Stream = MySqlSource;

    const ENGINE: &'static str = "MySQL/MariaDB";

    fn new(config: &Config, names: &Names) -> Result<MySqlBlue, Error> {
        let blue = super::options(config.source.url.expose(), "source.url")?;
        Ok(MySqlBlue { config: config.clone(), blue, server_id: super::admin::server_id(config, &names.origin) })
    }

    fn name_rules(config: &Config) -> Result<crate::tables::NameRules, Error> {
        <super::MySql as crate::source::family::Family>::name_rules(config)
    }

    async fn check(&self) -> crate::source::contract::report::Findings {
        super::check::check_source(&self.blue, &self.config).await
    }

    async fn prepare(&self) -> Result<(), Error> {
        let mut blue = connect(&self.blue, Side::Blue).await?;
        super::heartbeat::ensure_table(&mut blue, &database(&self.blue)).await
    }

    fn heartbeat_table(&self) -> TableName {
        super::heartbeat::table(&database(&self.blue))
    }

    async fn select(&self) -> Result<Vec<BlueTable>, Error> {
        let db = database(&self.blue);
        let mut blue = connect(&self.blue, Side::Blue).await?;
        let (selection, infos) = select_tables(&mut blue, &db, &self.config.table_filter()?).await?;
        if let Some(t) = unreplicable(&selection, &infos).first() {
            return Err(Error::Setup(format!("{}; {}", t.problem, t.fix)));
        }
        if let Some(h) = super::catalog::hidden_cascades(&mut blue, &db, &selection).await?.first() {
            return Err(Error::Setup(format!("{}; {}", super::cascade_problem(h), super::cascade_fix(h))));
        }
        let mut tables = Vec::with_capacity(selection.tables.len() + 1);
        for name in selection.tables.iter().filter(|t| t.name != HEARTBEAT_TABLE) {
            let (columns, key) = describe(&mut blue, name).await?;
            tables.push(BlueTable { name: name.clone(), columns, key, heartbeat: false });
        }
        // As `heartbeat::ensure_table` makes it.
        let columns = vec![("id".to_owned(), "int".to_owned()), ("at_us".to_owned(), "bigint".to_owned())];
        tables.push(BlueTable { name: self.heartbeat_table(), columns, key: vec!["id".into()], heartbeat: true });
        Ok(tables)
    }

    /// One reader in one consistent snapshot at a binlog position (commits blocked for a moment, as
    /// the MySQL family's copy does).
    async fn snapshot(&self, tables: &[BlueTable], max_rows: usize) -> Result<Snapshot, Error> {
        let (mut readers, point) = snapshot::open_readers(&self.blue, 1).await?;
        let reader = &mut readers[0];
        let mut rows = Vec::with_capacity(tables.len());
        for t in tables {
            let columns = t.columns.iter().map(|(c, _)| super::quote(c)).collect::<Vec<_>>().join(", ");
            // The binary protocol: integers arrive typed, not as text.
            let read: Vec<mysql_async::Row> = reader
                .exec(format!("SELECT {columns} FROM {} LIMIT {}", qualified(&t.name), max_rows + 1), ())
                .await
                .map_err(|e| super::sql_error(Side::Blue, "reading a table in the snapshot", e))?;
            if read.len() > max_rows {
                return Err(SchemaRefusal::TooLargeToCopy { table: t.name.to_string(), rows: max_rows, from: MySqlBlue::ENGINE }.into());
            }
            let mut table_rows = Vec::with_capacity(read.len());
            for row in read {
                let values = row.unwrap().into_iter().zip(&t.columns).map(|(v, c)| value(&t.name, c, v)).collect::<Result<Vec<_>, _>>()?;
                table_rows.push(values);
            }
            rows.push((t.name.clone(), table_rows));
        }
        reader.query_drop("COMMIT").await.map_err(|e| super::sql_error(Side::Blue, "ending the snapshot", e))?;
        Ok(Snapshot { position: Some(point.position), rows })
    }

    async fn open_stream(&self, from: &Position) -> Result<MySqlSource, Error> {
        let Position::Binlog(b) = from else {
            return Err(CopyRefusal::ForeignPosition { log: "binlog", position: from.to_string() }.into());
        };
        let db = database(&self.blue);
        let sequences = {
            let mut blue = connect(&self.blue, Side::Blue).await?;
            super::catalog::sequences(&mut blue, &db).await?
        };
        let filter = self.config.table_filter()?;
        let selects: turnout_decoders::mysql::decoder::TableSelector =
            Box::new(move |t: &TableName| t.schema == db && (t.name == HEARTBEAT_TABLE || (filter.selects(t) && !sequences.contains(&t.name))));
        MySqlSource::start_reading(self.blue.clone(), self.server_id, b.gtids.clone(), selects, Default::default(), self.config.receive_timeout()).await
    }

    fn heartbeat(&self, status: Arc<Status>, shutdown: watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::heartbeat::run(self.blue.clone(), Side::Blue, self.config.heartbeat_interval(), status, shutdown)
    }

    async fn teardown(&self) -> Result<Vec<String>, Error> {
        let mut blue = connect(&self.blue, Side::Blue).await?;
        let heartbeat = self.heartbeat_table();
        blue.query_drop(format!("DROP TABLE IF EXISTS {}", qualified(&heartbeat)))
            .await
            .map_err(|e| super::sql_error(Side::Blue, "dropping the heartbeat table", e))?;
        Ok(vec![format!("dropped {heartbeat} on blue (if it existed)")])
    }
}
