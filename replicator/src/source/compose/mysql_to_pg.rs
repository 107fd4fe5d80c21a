//! MySQL/MariaDB → PostgreSQL: the one type map and value converter between the two engines.
//!
//! A type is in the map only once its every value is known to arrive exactly; everything else is
//! refused by name (column, blue's type) — never carried approximately. Built so far:
//!
//! | blue | green | class | why |
//! | --- | --- | --- | --- |
//! | `INT` (signed) | `integer` | exact | both are 32-bit two's complement: the same range, value for value |
//! | `BIGINT` (signed) | `bigint` | exact | both are 64-bit two's complement |
//!
//! Blue's catalog prints a type (`int(11)`, `bigint unsigned`) and its binlog describes it
//! ([`MySqlType`]); both are read into one [`BlueType`] before the map is asked, so the copy, the
//! stream and `check` cannot map a column two ways.

use super::{BlueTable, Class, Convert, Mapping};
use crate::error::{Error, SchemaRefusal};
use turnout_decoders::event::Row;
use turnout_decoders::schema::{Column, ColumnType, MySqlType, TableSchema};
use turnout_decoders::Value;

/// PostgreSQL's `int4` and `int8` type oids.
const INT4: u32 = 23;
const INT8: u32 = 20;

/// The engines' names in messages.
const FROM: &str = "MySQL/MariaDB";
const TO: &str = "PostgreSQL";

/// A blue column type as the map knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum BlueType {
    Int,
    BigInt,
    /// Any other type, as blue prints it (or its binlog type code).
    Other(String),
}

impl BlueType {
    /// From blue's catalog (`information_schema.COLUMNS.COLUMN_TYPE`): `int(11)`, `bigint(20)
    /// unsigned`, `varchar(20)`.
    fn from_catalog(column_type: &str) -> BlueType {
        let t = column_type.trim().to_ascii_lowercase();
        // A display width is not part of the type (MySQL 8.0.19+ stopped printing it).
        let base = match (t.find('('), t.find(')')) {
            (Some(open), Some(close)) if close > open && t[open + 1..close].bytes().all(|b| b.is_ascii_digit()) => format!("{}{}", &t[..open], &t[close + 1..]),
            _ => t.clone(),
        };
        match base.trim() {
            "int" => BlueType::Int,
            "bigint" => BlueType::BigInt,
            _ => BlueType::Other(t),
        }
    }

    /// From blue's binlog (a table map with `binlog_row_metadata = FULL`).
    fn from_binlog(ty: &MySqlType) -> BlueType {
        match (ty.code, ty.unsigned) {
            (3, false) => BlueType::Int,
            (8, false) => BlueType::BigInt,
            (3, true) => BlueType::Other("int unsigned".into()),
            (8, true) => BlueType::Other("bigint unsigned".into()),
            (code, _) => BlueType::Other(format!("the binlog type {code}")),
        }
    }

    /// Green's type: its name, its oid and the class, or `None` where the map has no entry.
    fn green(&self) -> Option<(&'static str, u32, Class)> {
        match self {
            BlueType::Int => Some(("integer", INT4, Class::Exact)),
            BlueType::BigInt => Some(("bigint", INT8, Class::Exact)),
            BlueType::Other(_) => None,
        }
    }

    fn printed(&self) -> String {
        match self {
            BlueType::Int => "int".into(),
            BlueType::BigInt => "bigint".into(),
            BlueType::Other(t) => t.clone(),
        }
    }
}

/// MySQL/MariaDB → PostgreSQL.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MySqlToPg;

/// Green's column for blue's column `name` of type `blue` in `table`, or the refusal naming it.
fn green_column(table: &str, name: &str, blue: &BlueType, is_key: bool) -> Result<Column, Error> {
    let Some((_, oid, _)) = blue.green() else {
        return Err(SchemaRefusal::NotConverted { table: table.to_owned(), column: name.to_owned(), blue_type: blue.printed(), from: FROM, to: TO }.into());
    };
    Ok(Column { name: name.to_owned(), ty: ColumnType::pg(oid, -1), is_key })
}

impl Convert for MySqlToPg {
    fn map(&self, blue: &str) -> Mapping {
        let ty = BlueType::from_catalog(blue);
        match ty.green() {
            Some((green, _, class)) => Mapping::Mapped { green: green.to_owned(), class },
            None => Mapping::Refused { why: format!("turnout does not carry {} from {FROM} to {TO} yet", ty.printed()) },
        }
    }

    fn catalog_schema(&self, table: &BlueTable) -> Result<TableSchema, Error> {
        let name = table.name.to_string();
        let columns = table
            .columns
            .iter()
            .map(|(column, ty)| green_column(&name, column, &BlueType::from_catalog(ty), table.key.contains(column)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TableSchema {
            relation_id: 0,
            name: table.name.clone(),
            replica_identity: turnout_decoders::schema::ReplicaIdentity::Default,
            columns,
            foreign_key_checks: true,
        })
    }

    fn schema(&self, blue: &TableSchema) -> Result<TableSchema, Error> {
        let name = blue.name.to_string();
        let columns = blue
            .columns
            .iter()
            .map(|c| match &c.ty {
                ColumnType::MySql(ty) => green_column(&name, &c.name, &BlueType::from_binlog(ty), c.is_key),
                ColumnType::Pg { .. } => {
                    Err(SchemaRefusal::NotConverted { table: name.clone(), column: c.name.clone(), blue_type: "a PostgreSQL type".into(), from: FROM, to: TO }
                        .into())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TableSchema { columns, ..blue.clone() })
    }

    fn row(&self, green: &TableSchema, row: Row) -> Result<Row, Error> {
        if row.len() != green.columns.len() {
            return Err(SchemaRefusal::NotExact {
                at: green.name.to_string(),
                value: format!("a row of {} values", row.len()),
                to: TO,
                green_type: format!("a row of {} columns", green.columns.len()),
                fix: "the table's columns changed on blue; start over (turnout teardown, turnout run)",
            }
            .into());
        }
        green.columns.iter().zip(row).map(|(column, value)| convert_value(green, column, value)).collect()
    }
}

/// One value for green's `column`: unchanged in meaning, or refused naming it.
fn convert_value(table: &TableSchema, column: &Column, value: Value) -> Result<Value, Error> {
    let refuse = |value: &Value, green_type: &str| -> Error {
        SchemaRefusal::NotExact {
            at: format!("{}.{}", table.name, column.name),
            value: format!("{value:?}"),
            to: TO,
            green_type: green_type.to_owned(),
            fix: "leave the table out (tables.exclude) and report the value",
        }
        .into()
    };
    match (column.ty.pg_oid(), value) {
        (_, Value::Null) => Ok(Value::Null),
        (Some(INT4), Value::Int8(v)) => i32::try_from(v).map(Value::Int4).map_err(|_| refuse(&Value::Int8(v), "integer")),
        (Some(INT4), Value::Int4(v)) => Ok(Value::Int4(v)),
        (Some(INT8), Value::Int8(v)) => Ok(Value::Int8(v)),
        (Some(oid), other) => Err(refuse(&other, &format!("the type {oid}"))),
        (None, other) => Err(refuse(&other, "a type outside the map")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout_decoders::TableName;

    fn blue_table(columns: &[(&str, &str)]) -> BlueTable {
        BlueTable {
            name: TableName::new("shop", "t"),
            columns: columns.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect(),
            key: vec!["id".into()],
            heartbeat: false,
        }
    }

    #[test]
    fn the_catalog_and_the_binlog_reach_the_same_entry_of_the_map() {
        assert_eq!(BlueType::from_catalog("int(11)"), BlueType::Int);
        assert_eq!(BlueType::from_catalog("INT"), BlueType::Int);
        assert_eq!(BlueType::from_catalog("bigint(20)"), BlueType::BigInt);
        assert_eq!(BlueType::from_catalog("int(10) unsigned"), BlueType::Other("int(10) unsigned".into()));
        assert_eq!(BlueType::from_binlog(&MySqlType { code: 3, ..Default::default() }), BlueType::Int);
        assert_eq!(BlueType::from_binlog(&MySqlType { code: 8, ..Default::default() }), BlueType::BigInt);
        assert!(matches!(BlueType::from_binlog(&MySqlType { code: 8, unsigned: true, ..Default::default() }), BlueType::Other(_)));
        assert_eq!(MySqlToPg.map("int(11)"), Mapping::Mapped { green: "integer".into(), class: Class::Exact });
        assert!(matches!(MySqlToPg.map("varchar(20)"), Mapping::Refused { .. }));
    }

    #[test]
    fn a_column_outside_the_map_is_refused_naming_table_column_and_type() {
        let refused = MySqlToPg.catalog_schema(&blue_table(&[("id", "int"), ("note", "varchar(20)")])).err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some(
                "column note of shop.t is varchar(20) on blue: turnout does not carry varchar(20) from MySQL/MariaDB to PostgreSQL yet; \
                 leave the table out (tables.exclude = [\"shop.t\"])"
            )
        );
        let green = MySqlToPg.catalog_schema(&blue_table(&[("id", "int"), ("n", "bigint")])).expect("ints are in the map");
        assert_eq!(green.columns.iter().map(|c| c.ty.pg_oid()).collect::<Vec<_>>(), vec![Some(INT4), Some(INT8)]);
        assert!(green.columns[0].is_key && !green.columns[1].is_key);
    }

    #[test]
    fn values_arrive_exactly_or_stop_naming_the_column() {
        let green = MySqlToPg.catalog_schema(&blue_table(&[("id", "int"), ("n", "bigint")])).expect("ints are in the map");
        let row = MySqlToPg.row(&green, vec![Value::Int8(-2_147_483_648), Value::Int8(i64::MAX)]).expect("in range");
        assert_eq!(row, vec![Value::Int4(i32::MIN), Value::Int8(i64::MAX)]);
        assert_eq!(MySqlToPg.row(&green, vec![Value::Null, Value::Null]).expect("NULL"), vec![Value::Null, Value::Null]);
        let refused = MySqlToPg.row(&green, vec![Value::Int8(1 << 40), Value::Int8(0)]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.starts_with("shop.t.id holds Int8(1099511627776) on blue, which PostgreSQL cannot hold exactly as integer"), "{refused}");
        let text = MySqlToPg.row(&green, vec![Value::Int8(1), Value::Text("x".into())]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("shop.t.n holds Text(\"x\")"), "{text}");
    }
}
