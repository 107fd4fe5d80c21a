//! MySQL/MariaDB → PostgreSQL: the one type map and value converter between the two engines.
//!
//! A type is in the map only once its every value is known to arrive exactly, or to be refused by
//! value; everything else is refused by name (column, blue's type) — never carried approximately.
//! Where green's type holds more than blue's, a `CHECK` on green keeps it to blue's range, so the
//! class is exact and a value written on green after the cutover can go back. The map, and why:
//!
//! | blue | green | class | why |
//! | --- | --- | --- | --- |
//! | `TINYINT` / `UNSIGNED` | `smallint` `CHECK` −128…127 / 0…255 | exact | PostgreSQL has no 1-byte integer; the CHECK is blue's range (a `TINYINT(1)` stays a number: MySQL stores 2 and −1 in it) |
//! | `SMALLINT` / `UNSIGNED` | `smallint` / `integer` `CHECK` 0…65535 | exact | the same 16-bit range; unsigned needs the next width |
//! | `MEDIUMINT` / `UNSIGNED` | `integer` `CHECK` ±2²³ / 0…2²⁴−1 | exact | no 3-byte integer |
//! | `INT` / `UNSIGNED` | `integer` / `bigint` `CHECK` 0…2³²−1 | exact | |
//! | `BIGINT` / `UNSIGNED` | `bigint` / `numeric(20,0)` `CHECK` 0…2⁶⁴−1 | exact | no unsigned 64-bit integer: numeric holds it digit for digit |
//! | `BIGINT UNSIGNED` in a key (`AUTO_INCREMENT`, primary, unique or foreign) | `bigint` `CHECK` ≥ 0 | lossy | keys and the keys referring to them must be of one type, and an identity numbers only integers: values above 2⁶³ − 1 are counted and refused by value |
//! | `DECIMAL(p,s)` | `numeric(p,s)` | exact | the same fixed point (MySQL's p ≤ 65, s ≤ 30) |
//! | `FLOAT` / `DOUBLE` | `real` / `double precision` | exact | both IEEE 754 binary32 / binary64; MySQL stores no NaN or infinity, so a CHECK keeps them out on green |
//! | `DATE` | `date` | lossy | a zero date or a zero month or day (`0000-00-00`, `2024-00-10`) has no PostgreSQL value: counted, refused by value |
//! | `DATETIME(p)` | `timestamp(p)` | lossy | zero dates as for `DATE`; otherwise the same wall-clock time |
//! | `TIMESTAMP(p)` | `timestamptz(p)` | lossy | the same instant (both count from UTC); MySQL's zero timestamp is refused by value |
//! | `TIME(p)` | `interval` | widened | `TIME` is a duration of ±838:59:59; PostgreSQL's `time` holds 0…24 h, `interval` every TIME (and more) |
//! | `YEAR` | `smallint` `CHECK` 0 or 1901…2155 | exact | |
//! | `VARCHAR(n)`, `TEXT` types, in `utf8mb4`, `utf8mb3`, a single-byte set (`ascii` among them) or a Unicode encoding (`utf16`, `utf16le`, `utf32`, `ucs2`) | `varchar(n)`, `text` | lossy | PostgreSQL text cannot hold U+0000 (counted, refused by value); comparisons on green are PostgreSQL's (a `_ci` unique key on blue is case-sensitive on green); a single-byte set (`latin1`, MariaDB's default; `latin2`, `cp1251`, `koi8r`, …) is decoded byte for byte as blue's own conversion to UTF-8 does ([`charset::Encoding`], read from blue): a byte whose character does not convert back to it (`cp1251`'s 0x98) is counted and refused by value; a Unicode encoding is decoded by its standard, and its padding and U+0000 found by character, not byte |
//! | `CHAR(n)` in the same character sets | `varchar(n)` | lossy | as every reader of blue sees it: MySQL strips the padding on read, so green holds the value without trailing spaces; NUL bytes refused |
//! | `VARBINARY(n)`, `BLOB` types | `bytea` `CHECK` length ≤ n | exact | bytes for bytes |
//! | `BINARY(n)` | `bytea` `CHECK` length = n | exact | MySQL pads to n bytes with 0; the binlog's shorter value is padded back by the decoder |
//!
//! | `ENUM(…)` | `text` `CHECK` in the members (and `''`, blue's error value) | exact | the member's text; blue sorts an ENUM by member order, green as text (said per column) |
//! | `SET(…)` | `text` `CHECK` every comma-separated part a member | exact | the members' text in member order, comma-separated, as blue prints it |
//!
//! | `BIT(n)` | `bit(n)` | exact | the same n bits, most significant first |
//! | `POINT` / `GEOMETRY` | `point` `CHECK` finite | lossy | a point of SRID 0 is two IEEE doubles on both (bit for bit); another SRID, and for `GEOMETRY` another shape, has no value without PostGIS: counted, refused by value; a `SPATIAL` index becomes a GiST index |
//!
//! | `JSON` (Oracle MySQL) | `jsonb` | lossy | the same document: both engines keep an object's members once (the last duplicate wins) in one order (shorter key first, then by bytes); every number MySQL holds is a finite decimal `numeric` holds digit for digit. A typed `DATE`/`TIME`/`DATETIME` scalar (a plain string in `jsonb`), `\u0000` and a double's `-0.0` are counted and refused by value |
//!
//! MariaDB's `JSON` is a `LONGTEXT` (with a `json_valid` CHECK): its text arrives as it is.
//!
//! Refused for now, by name: multi-byte character sets other than UTF-8 and Unicode's fixed encodings (`sjis`, `gbk`, …), the other spatial types (`LINESTRING`, `POLYGON`, `MULTI…`, `GEOMETRYCOLLECTION`), generated columns.
//!
//! Blue's catalog types every column; a value arrives as the stream or the snapshot carries it
//! (`Int8`, `Bytes`, `Temporal` …) and is converted by its catalog type, so the copy and the stream
//! cannot map a column two ways.

use super::charset::{self, Encoding};
use super::{key_text, pg_name, shown, Affected, BlueColumn, BlueForeignKey, BlueTable, Class, Convert, GreenIndex, GreenTable, Mapping};
use crate::config::convert::Becomes;
use crate::config::Config;
use crate::error::{Error, SchemaRefusal};
use crate::source::pg::target::FK_ACTION_FUNCTIONS;
use std::collections::HashMap;
use std::sync::Arc;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{quote_ident, Column, ColumnType, ReplicaIdentity, TableSchema};
use turnout_decoders::value::{TemporalKind, Utf8Bytes};
use turnout_decoders::Value;

/// The engines' names in messages.
const FROM: &str = "MySQL/MariaDB";
const TO: &str = "PostgreSQL";

use turnout_decoders::pg::types::oid;

/// A blue column type as the map knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum BlueType {
    /// An integer of `bytes` bytes (1, 2, 3, 4, 8).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    /// A `BIGINT UNSIGNED` key (`AUTO_INCREMENT`, or in a primary, unique or foreign key): green's
    /// `bigint`, lossy above 2⁶³ − 1, so that keys and the foreign keys that refer to them stay of
    /// one type and an identity can number them.
    Counter,
    Decimal {
        precision: u32,
        scale: u32,
        unsigned: bool,
    },
    Float {
        double: bool,
        unsigned: bool,
    },
    Date,
    DateTime {
        fsp: u32,
    },
    Timestamp {
        fsp: u32,
    },
    Time,
    Year,
    /// `VARCHAR(n)` (`Some(n)`) or a `TEXT` type, in a character set whose bytes are UTF-8, or in a
    /// single-byte set (its bytes decoded as blue converts them).
    Text {
        chars: Option<u32>,
        encoding: Option<Arc<Encoding>>,
    },
    /// `CHAR(n)` in one of those character sets: MySQL pads it with spaces to n characters when it
    /// stores it and strips trailing spaces when it is read.
    Char {
        chars: u32,
        encoding: Option<Arc<Encoding>>,
    },
    /// `VARBINARY(n)` or a `BLOB` type (`fixed: false`), `BINARY(n)` (`fixed: true`).
    Bytes {
        length: Option<u32>,
        fixed: bool,
    },
    /// `ENUM(…)`: its members in order (the stream and the copy carry a member's 1-based index; 0
    /// is the empty "error" value).
    Enum {
        members: Vec<String>,
    },
    /// `SET(…)`: its members in order (carried as a bit mask, bit i for member i).
    Set {
        members: Vec<String>,
    },
    /// `BIT(n)`: n bits (1…64), carried as ⌈n/8⌉ big-endian bytes.
    Bit {
        bits: u32,
    },
    /// `POINT` (`any: false`) or `GEOMETRY` (`any: true`): points of SRID 0 as PostgreSQL's `point`.
    Point {
        any: bool,
    },
    /// Oracle MySQL's `JSON` (MariaDB's is a `LONGTEXT` and arrives as text).
    Json,
    /// Any other type, and why it is refused.
    Other(String),
}

/// `name(a[,b]) rest` → (`name`, the numbers in the parentheses, `rest`).
fn split_type(column_type: &str) -> (String, Vec<u32>, String) {
    let t = column_type.trim().to_ascii_lowercase();
    match (t.find('('), t.find(')')) {
        (Some(open), Some(close)) if close > open => {
            let args = t[open + 1..close].split(',').filter_map(|a| a.trim().parse().ok()).collect();
            (t[..open].trim().to_owned(), args, t[close + 1..].trim().to_owned())
        }
        _ => {
            let mut words = t.splitn(2, ' ');
            (words.next().unwrap_or_default().to_owned(), Vec::new(), words.next().unwrap_or_default().to_owned())
        }
    }
}

impl BlueType {
    /// From blue's catalog: `column` of `table`.
    fn of(table: &BlueTable, column: &BlueColumn) -> BlueType {
        if column.generated {
            return BlueType::Other(format!("generated {}", column.column_type));
        }
        let (name, args, rest) = split_type(&column.column_type);
        let unsigned = rest.contains("unsigned");
        let arg = |i: usize| args.get(i).copied();
        let encoding = column.encoding.clone();
        let utf8 = encoding.is_some() || column.charset.as_deref().is_some_and(charset::utf8);
        match name.as_str() {
            "tinyint" => BlueType::Int { bytes: 1, unsigned },
            "smallint" => BlueType::Int { bytes: 2, unsigned },
            "mediumint" => BlueType::Int { bytes: 3, unsigned },
            "int" | "integer" => BlueType::Int { bytes: 4, unsigned },
            "bigint" if unsigned && keyed(table, &column.name) => BlueType::Counter,
            "bigint" => BlueType::Int { bytes: 8, unsigned },
            "decimal" | "numeric" => BlueType::Decimal { precision: arg(0).unwrap_or(10), scale: arg(1).unwrap_or(0), unsigned },
            "float" => BlueType::Float { double: false, unsigned },
            "double" | "real" => BlueType::Float { double: true, unsigned },
            "date" => BlueType::Date,
            "datetime" => BlueType::DateTime { fsp: arg(0).unwrap_or(0) },
            "timestamp" => BlueType::Timestamp { fsp: arg(0).unwrap_or(0) },
            "time" => BlueType::Time,
            // MariaDB's YEAR(2) reads as two digits over the binary protocol, the binlog as four.
            "year" if arg(0) == Some(2) => BlueType::Other(column.column_type.clone()),
            "year" => BlueType::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if !utf8 => {
                BlueType::Other(format!("{} in the character set {}", column.column_type, column.charset.as_deref().unwrap_or("unknown")))
            }
            "varchar" => BlueType::Text { chars: arg(0), encoding },
            "char" => BlueType::Char { chars: arg(0).unwrap_or(1), encoding },
            "tinytext" | "text" | "mediumtext" | "longtext" => BlueType::Text { chars: None, encoding },
            "varbinary" => BlueType::Bytes { length: arg(0), fixed: false },
            "tinyblob" | "blob" | "mediumblob" | "longblob" => BlueType::Bytes { length: None, fixed: false },
            "binary" => BlueType::Bytes { length: arg(0), fixed: true },
            // A member holding `{}` would be taken for the column in green's CHECK: refused.
            "enum" | "set" => match members::members(&column.column_type) {
                Some(members) if !members.iter().any(|m| m.contains("{}")) => {
                    if name == "enum" {
                        BlueType::Enum { members }
                    } else {
                        BlueType::Set { members }
                    }
                }
                _ => BlueType::Other(column.column_type.clone()),
            },
            "bit" => BlueType::Bit { bits: arg(0).unwrap_or(1) },
            "point" => BlueType::Point { any: false },
            "geometry" => BlueType::Point { any: true },
            "json" => BlueType::Json,
            _ => BlueType::Other(column.column_type.clone()),
        }
    }

    /// Green's type (DDL, oid, type modifier), the `CHECK` that keeps green to blue's range
    /// (`{}` stands for the column), the class, why, and what a lossy column's values can hold.
    fn green(&self) -> Option<GreenType> {
        let ty = |ddl: String, oid: u32, typmod: i32| GreenType { ddl, oid, typmod, check: None, class: Class::Exact, note: "", affected: None };
        Some(match self.clone() {
            BlueType::Int { bytes, unsigned } => int_green(bytes, unsigned),
            BlueType::Counter => GreenType {
                check: Some("{} >= 0".into()),
                class: Class::Lossy,
                note: "a key: bigint like every key it refers to or is referred by, values above 2⁶³ − 1 refused",
                affected: Some(Affected::AboveSigned),
                ..ty("bigint".into(), oid::INT8, -1)
            },
            BlueType::Decimal { precision, scale, unsigned } => {
                let typmod = i32::try_from((precision << 16) | scale).unwrap_or(-5) + 4;
                GreenType { check: unsigned.then(|| "{} >= 0".to_owned()), ..ty(format!("numeric({precision},{scale})"), oid::NUMERIC, typmod) }
            }
            BlueType::Float { double, unsigned } => {
                let (ddl, oid) = if double { ("double precision", oid::FLOAT8) } else { ("real", oid::FLOAT4) };
                let finite = "{} NOT IN ('NaN', 'Infinity', '-Infinity')".to_owned();
                GreenType { check: Some(if unsigned { format!("{finite} AND {{}} >= 0") } else { finite }), ..ty(ddl.into(), oid, -1) }
            }
            BlueType::Date => {
                GreenType { class: Class::Lossy, note: "zero dates refused", affected: Some(Affected::ZeroDate), ..ty("date".into(), oid::DATE, -1) }
            }
            BlueType::DateTime { fsp } => GreenType {
                class: Class::Lossy,
                note: "zero dates refused",
                affected: Some(Affected::ZeroDate),
                ..ty(format!("timestamp({fsp}) without time zone"), oid::TIMESTAMP, i32::try_from(fsp).unwrap_or(6))
            },
            BlueType::Timestamp { fsp } => GreenType {
                class: Class::Lossy,
                note: "the zero timestamp refused",
                affected: Some(Affected::ZeroDate),
                ..ty(format!("timestamp({fsp}) with time zone"), oid::TIMESTAMPTZ, i32::try_from(fsp).unwrap_or(6))
            },
            BlueType::Time => GreenType { class: Class::Widened, note: "interval holds more than ±838:59:59", ..ty("interval".into(), oid::INTERVAL, -1) },
            BlueType::Year => GreenType { check: Some("{} = 0 OR {} BETWEEN 1901 AND 2155".into()), ..ty("smallint".into(), oid::INT2, -1) },
            BlueType::Text { chars, encoding } => {
                let (ddl, oid, typmod) = match chars {
                    Some(n) => (format!("varchar({n})"), oid::VARCHAR, i32::try_from(n).unwrap_or(-5) + 4),
                    None => ("text".to_owned(), oid::TEXT, -1),
                };
                let (note, affected) = strings::lossy(encoding.as_deref(), false);
                GreenType { class: Class::Lossy, note, affected: Some(affected), ..ty(ddl, oid, typmod) }
            }
            BlueType::Char { chars, encoding } => {
                let (note, affected) = strings::lossy(encoding.as_deref(), true);
                GreenType {
                    class: Class::Lossy,
                    note,
                    affected: Some(affected),
                    ..ty(format!("varchar({chars})"), oid::VARCHAR, i32::try_from(chars).unwrap_or(-5) + 4)
                }
            }
            BlueType::Bytes { length, fixed } => {
                let check = match (length, fixed) {
                    (Some(n), true) => Some(format!("octet_length({{}}) = {n}")),
                    (Some(n), false) => Some(format!("octet_length({{}}) <= {n}")),
                    (None, _) => None,
                };
                GreenType { check, ..ty("bytea".into(), oid::BYTEA, -1) }
            }
            BlueType::Enum { members } => {
                GreenType { check: Some(members::enum_check(&members)), note: members::ENUM_NOTE, ..ty("text".into(), oid::TEXT, -1) }
            }
            BlueType::Set { members } => GreenType { check: Some(members::set_check(&members)), note: members::SET_NOTE, ..ty("text".into(), oid::TEXT, -1) },
            BlueType::Bit { bits } => ty(format!("bit({bits})"), oid::BIT, i32::try_from(bits).unwrap_or(-1)),
            BlueType::Point { any } => points::green(any),
            BlueType::Json => json::green(),
            BlueType::Other(_) => return None,
        })
    }

    fn printed(&self, column: &BlueColumn) -> String {
        match self {
            BlueType::Other(t) => t.clone(),
            _ => column.column_type.clone(),
        }
    }
}

/// Green's integer for blue's of `bytes` bytes: the narrowest that holds every value, with a `CHECK`
/// keeping it to blue's range where green's is wider.
fn int_green(bytes: u8, unsigned: bool) -> GreenType {
    let (ddl, oid, lo, hi): (&str, u32, i128, i128) = match (bytes, unsigned) {
        (1, false) => ("smallint", oid::INT2, -128, 127),
        (1, true) => ("smallint", oid::INT2, 0, 255),
        (2, false) => ("smallint", oid::INT2, i128::from(i16::MIN), i128::from(i16::MAX)),
        (2, true) => ("integer", oid::INT4, 0, 65_535),
        (3, false) => ("integer", oid::INT4, -8_388_608, 8_388_607),
        (3, true) => ("integer", oid::INT4, 0, 16_777_215),
        (4, false) => ("integer", oid::INT4, i128::from(i32::MIN), i128::from(i32::MAX)),
        (4, true) => ("bigint", oid::INT8, 0, i128::from(u32::MAX)),
        (8, false) => ("bigint", oid::INT8, i128::from(i64::MIN), i128::from(i64::MAX)),
        _ => ("numeric(20,0)", oid::NUMERIC, 0, i128::from(u64::MAX)),
    };
    let typmod = if oid == oid::NUMERIC { (20 << 16) + 4 } else { -1 };
    let natural = matches!((bytes, unsigned), (2, false) | (4, false) | (8, false));
    GreenType { check: (!natural).then(|| format!("{{}} BETWEEN {lo} AND {hi}")), ddl: ddl.into(), oid, typmod, class: Class::Exact, note: "", affected: None }
}

/// Whether `column` of `table` is a key: `AUTO_INCREMENT`, or in its primary key, a unique index or
/// a foreign key.
fn keyed(table: &BlueTable, column: &str) -> bool {
    table.columns.iter().any(|c| c.name == column && c.auto_increment)
        || table.key.iter().any(|k| k == column)
        || table.indexes.iter().any(|i| i.unique && i.columns.iter().any(|(c, _)| c == column))
        || table.foreign_keys.iter().any(|f| f.columns.iter().any(|c| c == column))
}

/// Where a blue type goes on green.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GreenType {
    ddl: String,
    oid: u32,
    typmod: i32,
    check: Option<String>,
    class: Class,
    note: &'static str,
    affected: Option<Affected>,
}

/// MySQL/MariaDB → PostgreSQL.
#[derive(Clone, Debug, Default)]
pub(crate) struct MySqlToPg {
    /// The lossy mappings the operator accepts (`convert.accept`), by `(database, table, column)`.
    accepted: HashMap<(String, String, String), Becomes>,
}

impl MySqlToPg {
    /// What `column` of `table`'s values green cannot hold become, when the operator accepts it.
    fn accepted(&self, table: &BlueTable, column: &BlueColumn) -> Option<Becomes> {
        self.accepted.get(&(table.name.schema.clone(), table.name.name.clone(), column.name.clone())).copied()
    }
}

/// Blue's type of `column` of `table` as the map knows it.
fn blue_of(table: &BlueTable, column: &BlueColumn) -> BlueType {
    BlueType::of(table, column)
}

/// Green's type of `column` of `table`, or the refusal naming it.
fn green_type(table: &BlueTable, column: &BlueColumn) -> Result<(BlueType, GreenType), Error> {
    let blue = BlueType::of(table, column);
    match blue.green() {
        Some(green) => Ok((blue, green)),
        None => {
            Err(SchemaRefusal::NotConverted { table: table.name.to_string(), column: column.name.clone(), blue_type: blue.printed(column), from: FROM, to: TO }
                .into())
        }
    }
}

impl Convert for MySqlToPg {
    fn from_config(config: &Config) -> MySqlToPg {
        // Each entry was checked when the configuration was read.
        let accepted = config.convert.accept.iter().enumerate().filter_map(|(at, a)| a.parse(at).ok()).collect();
        MySqlToPg { accepted }
    }

    fn map(&self, table: &BlueTable, column: &BlueColumn) -> Mapping {
        let blue = BlueType::of(table, column);
        match blue.green() {
            Some(g) => match (self.accepted(table, column), g.affected) {
                (Some(b), _) if keyed(table, &column.name) => Mapping::Refused {
                    why: format!(
                        "convert.accept names it with as = \"{}\", but it is a key (primary, unique or foreign): two values blue keeps apart \
                         could become one on green, and a row found by it on the way back would not be; remove the entry",
                        b.word()
                    ),
                },
                (Some(Becomes::Null), Some(Affected::ZeroDate)) if column.nullable => {
                    Mapping::Mapped { green: g.ddl, class: g.class, note: g.note, affected: g.affected, accepted: Some(Becomes::Null) }
                }
                (Some(Becomes::WithoutNul), Some(Affected::NulOrUnconverted)) => Mapping::Refused {
                    why: format!(
                        "convert.accept names it with as = \"without-nul\", but its character set ({}) has bytes blue converts to no \
                         character of their own, which removing NUL bytes does not mend; convert the column to utf8mb4 on blue, or leave \
                         the table out",
                        column.charset.as_deref().unwrap_or("unknown")
                    ),
                },
                (Some(Becomes::WithoutNul), Some(Affected::NulByte)) => {
                    Mapping::Mapped { green: g.ddl, class: g.class, note: g.note, affected: g.affected, accepted: Some(Becomes::WithoutNul) }
                }
                (Some(b), _) => Mapping::Refused {
                    why: format!(
                        "convert.accept names it with as = \"{}\", which applies only to {}; remove the entry",
                        b.word(),
                        match b {
                            Becomes::Null => "a nullable DATE, DATETIME or TIMESTAMP column",
                            Becomes::WithoutNul => "a text column (VARCHAR, CHAR, TEXT)",
                        }
                    ),
                },
                (None, _) => Mapping::Mapped { green: g.ddl, class: g.class, note: g.note, affected: g.affected, accepted: None },
            },
            None => Mapping::Refused { why: format!("turnout does not carry {} from {FROM} to {TO} yet", blue.printed(column)) },
        }
    }

    fn green(&self, table: &BlueTable) -> Result<GreenTable, Error> {
        let keyless = table.key.is_empty();
        let mut columns = Vec::with_capacity(table.columns.len());
        let mut definitions = Vec::with_capacity(table.columns.len());
        let mut after = Vec::new();
        let qualified = format!("{}.{}", quote_ident(&table.name.schema), quote_ident(&table.name.name));
        for c in &table.columns {
            let (_, g) = green_type(table, c)?;
            let name = quote_ident(&c.name);
            let mut definition = format!("{name} {}", g.ddl);
            if let Some(default) = c.default.as_deref().and_then(|d| defaults::carried(&blue_of(table, c), d)) {
                definition.push_str(&format!(" DEFAULT {default}"));
            }
            if !c.nullable {
                definition.push_str(" NOT NULL");
            }
            // The type map's range, and the guard that keeps green to what blue can take back.
            let checks: Vec<String> = g.check.iter().cloned().chain(back::guard(&blue_of(table, c), c)).collect();
            let check = match checks.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                many => Some(many.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" AND ")),
            };
            if let Some(check) = check {
                definition.push_str(&format!(" CHECK ({})", check.replace("{}", &name)));
            }
            // Blue's counter as green's identity, moved to where blue's is (the cutover moves it again).
            if c.auto_increment && matches!(g.oid, oid::INT2 | oid::INT4 | oid::INT8) {
                definition.push_str(" GENERATED BY DEFAULT AS IDENTITY");
                if let Some(next) = table.next_auto_increment {
                    after.push(format!("ALTER TABLE {qualified} ALTER COLUMN {name} RESTART WITH {next}"));
                }
            }
            definitions.push(definition);
            columns.push(Column { name: c.name.clone(), ty: ColumnType::pg(g.oid, g.typmod), is_key: keyless || table.key.contains(&c.name) });
        }
        let (indexes, mut left_out) = indexes(table, &qualified);
        after.extend(indexes.iter().map(|i| i.statement.clone()));
        refuse_inexact_actions(table)?;
        let (references, unreferenced) = references(table, &qualified);
        left_out.extend(unreferenced);
        let replica_identity = if keyless { ReplicaIdentity::Full } else { ReplicaIdentity::Default };
        let schema = TableSchema { relation_id: 0, name: table.name.clone(), replica_identity, columns, foreign_key_checks: true };
        let not_null = table.columns.iter().map(|c| !c.nullable).collect();
        let has_default = table.columns.iter().map(|c| if c.default.is_none() { Some(false) } else { self.green_default(table, c).map(|_| true) }).collect();
        Ok(GreenTable { schema, definitions, not_null, has_default, after, indexes, references, left_out })
    }

    fn row(&self, table: &BlueTable, row: Row) -> Result<Row, Error> {
        if row.len() != table.columns.len() {
            return Err(SchemaRefusal::NotExact {
                at: table.name.to_string(),
                value: format!("a row of {} values", row.len()),
                to: TO,
                green_type: format!("a row of {} columns", table.columns.len()),
                fix: "the table's columns changed on blue; start over (turnout teardown, turnout run)",
            }
            .into());
        }
        let key = key_text(table, &row);
        table.columns.iter().zip(row).map(|(c, v)| convert(table, c, v, &key, self.accepted(table, c))).collect()
    }

    fn green_default(&self, table: &BlueTable, column: &BlueColumn) -> Option<String> {
        defaults::carried(&blue_of(table, column), column.default.as_deref()?)
    }

    fn back_schema(&self, table: &BlueTable) -> Result<TableSchema, Error> {
        for c in &table.columns {
            green_type(table, c)?;
        }
        Ok(back::schema(table))
    }

    fn back_row(&self, table: &BlueTable, row: Row) -> Result<Row, Error> {
        if row.len() != table.columns.len() {
            return Err(Error::Setup(format!("{}: green sent a row of {} values for {} columns", table.name, row.len(), table.columns.len())));
        }
        let key = key_text(table, &row);
        table.columns.iter().zip(row).map(|(c, v)| back::value(table, c, v, &key)).collect()
    }

    fn back_key(&self, table: &BlueTable, key_columns: &[usize], key: Row) -> Result<Row, Error> {
        key_columns
            .iter()
            .zip(key)
            .map(|(&i, v)| match table.columns.get(i) {
                Some(c) => back::value(table, c, v, "the key"),
                None => Err(Error::Setup(format!("{}: a key column the catalog does not have", table.name))),
            })
            .collect()
    }

    fn unguarded(&self, table: &BlueTable) -> Vec<String> {
        let mut out = back::unguarded(table);
        // A keyless table's rows are found on blue by every value: one green holds otherwise than
        // blue (an accepted NULL for a zero date) would not be found by the stream back.
        if table.key.is_empty() {
            for c in table.columns.iter().filter(|c| self.accepted(table, c).is_some()) {
                out.push(format!(
                    "{}.{}: accepted in convert.accept in a table without a key, whose rows the way back finds by every value; give {} a \
                     primary key on blue, or set cutover.reverse = false",
                    table.name, c.name, table.name
                ));
            }
        }
        out
    }

    fn key(&self, table: &BlueTable, key_columns: &[usize], key: Row) -> Result<Row, Error> {
        let text = key_columns
            .iter()
            .zip(&key)
            .map(|(&i, v)| format!("{} = {}", table.columns.get(i).map_or("?", |c| &c.name), shown(v)))
            .collect::<Vec<_>>()
            .join(", ");
        key_columns
            .iter()
            .zip(key)
            .map(|(&i, v)| match table.columns.get(i) {
                Some(c) => convert(table, c, v, &text, self.accepted(table, c)),
                None => Err(Error::Setup(format!("{}: a key column the catalog does not have", table.name))),
            })
            .collect()
    }
}

/// Green's name of an index of blue's table: unique in green's schema, at most 63 bytes.
fn index_name(table: &BlueTable, index: &str) -> String {
    pg_name(&format!("{}_{index}", table.name.name))
}

/// The `CREATE INDEX` statements of `table`'s indexes, and what green does not get (a `FULLTEXT`
/// index, a `SPATIAL` one of another column than a point's, one on an expression).
fn indexes(table: &BlueTable, qualified: &str) -> (Vec<GreenIndex>, Vec<String>) {
    let (mut created, mut left_out) = (Vec::new(), Vec::new());
    for index in &table.indexes {
        // A SPATIAL index of a point column: PostgreSQL's GiST index of points answers the same
        // questions (containment in a box, nearest first).
        // (MariaDB's catalog gives a SPATIAL key part a length of 32, the size of its bounding box.)
        if let (true, [(column, _)]) = (index.kind == "SPATIAL", index.columns.as_slice()) {
            if table.columns.iter().any(|c| c.name == *column && matches!(BlueType::of(table, c), BlueType::Point { .. })) {
                let name = index_name(table, &index.name);
                let statement = format!("CREATE INDEX {} ON {qualified} USING gist ({})", quote_ident(&name), quote_ident(column));
                created.push(GreenIndex { blue: index.name.clone(), name, statement });
                continue;
            }
        }
        let spatial_part =
            index.columns.iter().any(|(c, _)| table.columns.iter().any(|col| col.name == *c && matches!(BlueType::of(table, col), BlueType::Point { .. })));
        if !matches!(index.kind.as_str(), "BTREE" | "HASH") || spatial_part || index.columns.iter().any(|(c, _)| c == "(an expression)") {
            left_out.push(format!("{} index {} of {} (not created on green: make its PostgreSQL counterpart yourself)", index.kind, index.name, table.name));
            continue;
        }
        let parts: Vec<String> = index
            .columns
            .iter()
            .map(|(c, prefix)| {
                let name = quote_ident(c);
                let bytes = table.columns.iter().find(|col| col.name == *c).is_some_and(|col| col.charset.is_none());
                // A prefix index keys the first n characters (bytes of a binary string), on green too.
                match (prefix, bytes) {
                    (Some(n), false) => format!("(left({name}, {n}))"),
                    (Some(n), true) => format!("(substring({name} FROM 1 FOR {n}))"),
                    (None, _) => name,
                }
            })
            .collect();
        let unique = if index.unique { "UNIQUE " } else { "" };
        let name = index_name(table, &index.name);
        let statement = format!("CREATE {unique}INDEX {} ON {qualified} ({})", quote_ident(&name), parts.join(", "));
        created.push(GreenIndex { blue: index.name.clone(), name, statement });
    }
    (created, left_out)
}

/// The foreign keys of `table` as green's constraints, and the ones to a table of another database
/// (left to the operator).
///
/// Green applies blue's rows with `session_replication_role = replica`, which fires no foreign key's
/// action. Where blue does not log the rows its actions change (InnoDB's own foreign keys), green
/// must repeat them: the triggers that carry the action (`ON UPDATE`/`ON DELETE` `CASCADE`,
/// `SET NULL`, `SET DEFAULT`) are made `ENABLE ALWAYS` (this takes a superuser, as any change to a
/// system trigger does); the stream refuses a change that would make green act where blue did not
/// (see `Converting`). Where blue logs them, the triggers stay as PostgreSQL makes them.
fn references(table: &BlueTable, qualified: &str) -> (Vec<String>, Vec<String>) {
    let (mut added, mut left_out) = (Vec::new(), Vec::new());
    for fk in &table.foreign_keys {
        if fk.parent.schema != table.name.schema {
            left_out.push(format!("foreign key {} of {} to {} (another database: add it on green yourself)", fk.name, table.name, fk.parent));
            continue;
        }
        let list = |columns: &[String]| columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let rule = |r: &str| match r.to_ascii_uppercase().as_str() {
            "CASCADE" => "CASCADE",
            "SET NULL" => "SET NULL",
            "SET DEFAULT" => "SET DEFAULT",
            "RESTRICT" => "RESTRICT",
            _ => "NO ACTION",
        };
        // PostgreSQL cuts a name to 63 bytes (MySQL allows 64 characters): cut it here, so that the
        // statement below finds the constraint by the name it has.
        let name = pg_name(&fk.name);
        added.push(format!(
            "ALTER TABLE {qualified} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({}) ON UPDATE {} ON DELETE {}",
            quote_ident(&name),
            list(&fk.columns),
            quote_ident(&fk.parent.schema),
            quote_ident(&fk.parent.name),
            list(&fk.parent_columns),
            rule(&fk.on_update),
            rule(&fk.on_delete)
        ));
        if !fk.actions_logged && (BlueForeignKey::acts(&fk.on_update) || BlueForeignKey::acts(&fk.on_delete)) {
            added.push(always_acting(qualified, &name));
        }
    }
    (added, left_out)
}

/// Refuses a foreign key green must act for (blue does not log its action) over a character column
/// blue compares by a collation: InnoDB finds the referring rows by it, green's trigger byte for byte.
fn refuse_inexact_actions(table: &BlueTable) -> Result<(), Error> {
    for fk in table.foreign_keys.iter().filter(|fk| !fk.actions_logged && (BlueForeignKey::acts(&fk.on_update) || BlueForeignKey::acts(&fk.on_delete))) {
        let inexact =
            fk.columns.iter().filter_map(|name| table.columns.iter().find(|c| c.name == *name)).find(|c| c.charset.is_some() && !back::exact_collation(c));
        if let Some(c) = inexact {
            return Err(SchemaRefusal::ActionByCollation {
                table: table.name.to_string(),
                constraint: fk.name.clone(),
                column: c.name.clone(),
                collation: c.collation.clone().unwrap_or_else(|| "its collation".into()),
            }
            .into());
        }
    }
    Ok(())
}

/// The statement that makes the action triggers of `constraint` of `qualified` fire for replicated
/// rows too; it fails when it finds none to change.
fn always_acting(qualified: &str, constraint: &str) -> String {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "DO $turnout$ DECLARE t record; n int := 0; BEGIN \
           FOR t IN SELECT c.confrelid::regclass AS parent, tg.tgname FROM pg_constraint c \
             JOIN pg_trigger tg ON tg.tgconstraint = c.oid AND tg.tgrelid = c.confrelid JOIN pg_proc p ON p.oid = tg.tgfoid \
             WHERE c.conrelid = {}::regclass AND c.conname = {} AND p.proname IN ({}) \
           LOOP EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.parent, t.tgname); n := n + 1; END LOOP; \
           IF n = 0 THEN RAISE EXCEPTION 'no action trigger of foreign key % found to make ENABLE ALWAYS', {}; END IF; END $turnout$",
        literal(qualified),
        literal(constraint),
        FK_ACTION_FUNCTIONS,
        literal(constraint)
    )
}

/// One value of `column` for green: the same value, or refused naming table, row and column — or,
/// for a value green cannot hold, what the operator accepted it to become.
fn convert(table: &BlueTable, column: &BlueColumn, value: Value, key: &str, accepted: Option<Becomes>) -> Result<Value, Error> {
    let (blue, green) = green_type(table, column)?;
    let refuse = |value: &Value, why: &'static str| -> Error {
        SchemaRefusal::NotExact { at: format!("{}.{} ({key})", table.name, column.name), value: shown(value), to: TO, green_type: green.ddl.clone(), fix: why }
            .into()
    };
    let out_of_range = "blue's own range was exceeded: report it";
    Ok(match (&blue, value) {
        (_, Value::Null) => Value::Null,
        // A column an update's image leaves out: green keeps its value.
        (_, Value::Unchanged) => Value::Unchanged,
        (BlueType::Int { .. } | BlueType::Year | BlueType::Counter, v @ (Value::Int8(_) | Value::UInt8(_))) => {
            let n: i128 = match &v {
                Value::Int8(i) => i128::from(*i),
                Value::UInt8(u) => i128::from(*u),
                _ => 0,
            };
            match green.oid {
                oid::INT2 => i16::try_from(n).map(Value::Int2).map_err(|_| refuse(&v, out_of_range))?,
                oid::INT4 => i32::try_from(n).map(Value::Int4).map_err(|_| refuse(&v, out_of_range))?,
                oid::INT8 => i64::try_from(n).map(Value::Int8).map_err(|_| refuse(&v, out_of_range))?,
                _ => Value::Numeric(Utf8Bytes::from_string(n.to_string())),
            }
        }
        (BlueType::Decimal { .. }, Value::Numeric(t)) => Value::Numeric(t),
        (BlueType::Decimal { .. }, Value::Bytes(b)) => match Utf8Bytes::try_from_bytes(b.clone()) {
            Ok(t) if !t.as_str().is_empty() && t.as_str().bytes().all(|c| c.is_ascii_digit() || c == b'.' || c == b'-') => Value::Numeric(t),
            _ => return Err(refuse(&Value::Bytes(b), "a DECIMAL that is not a number: report it")),
        },
        (BlueType::Float { double: false, .. }, Value::Float4(f)) => Value::Float4(f),
        (BlueType::Float { double: true, .. }, Value::Float8(f)) => Value::Float8(f),
        (BlueType::Date | BlueType::DateTime { .. } | BlueType::Timestamp { .. }, Value::Temporal(kind, t)) => {
            if zero_date(t.as_str()) {
                if accepted == Some(Becomes::Null) && column.nullable {
                    return Ok(Value::Null);
                }
                return Err(refuse(
                    &Value::Temporal(kind, t),
                    "PostgreSQL has no zero date; make it NULL or a real date on blue (UPDATE … SET col = NULL WHERE col = '0000-00-00'), accept it as NULL ([[convert.accept]] as = \"null\"), or leave the table out",
                ));
            }
            match blue {
                BlueType::Date => Value::Temporal(TemporalKind::Date, t),
                BlueType::DateTime { .. } => Value::Temporal(TemporalKind::Timestamp, t),
                // An instant in UTC, said so: green's session time zone cannot move it.
                _ => Value::Temporal(TemporalKind::TimestampTz, Utf8Bytes::from_string(format!("{t}+00"))),
            }
        }
        (BlueType::Time, Value::Temporal(_, t)) => Value::Temporal(TemporalKind::Interval, t),
        // A CHAR whose NUL bytes are removed is read again as blue would read it: without trailing spaces.
        (BlueType::Char { encoding, .. }, Value::Bytes(b)) => {
            let (b, encoding) = strings::widened(b, encoding.as_deref()).map_err(|(v, why)| refuse(&v, why))?;
            strings::text(strings::unpadded(strings::accepted(strings::unpadded(b), accepted)), encoding).map_err(|(v, why)| refuse(&v, why))?
        }
        (BlueType::Text { encoding, .. }, Value::Bytes(b)) => {
            let (b, encoding) = strings::widened(b, encoding.as_deref()).map_err(|(v, why)| refuse(&v, why))?;
            strings::text(strings::accepted(b, accepted), encoding).map_err(|(v, why)| refuse(&v, why))?
        }
        (BlueType::Bytes { .. }, Value::Bytes(b)) => Value::Bytes(b),
        (BlueType::Bit { bits }, Value::Bytes(b)) => bits::text(&b, *bits).map_err(|why| refuse(&Value::Bytes(b.clone()), why))?,
        (BlueType::Point { .. }, Value::Bytes(b)) => points::point(&b).map_err(|why| refuse(&Value::Bytes(b.clone()), why))?,
        (BlueType::Json, Value::Json { text, .. }) => Value::Json {
            jsonb: true,
            text: Utf8Bytes::from_string(json::jsonb(text.as_str()).map_err(|why| refuse(&Value::Json { jsonb: false, text: text.clone() }, why))?),
        },
        // A document holding DECIMAL scalars only: their digits are exact in jsonb.
        (BlueType::Json, Value::TypedJson { text, sql }) => {
            let why = if json::typed_dates(sql.as_str()) { Err(json::TYPED) } else { json::jsonb(text.as_str()) };
            Value::Json { jsonb: true, text: Utf8Bytes::from_string(why.map_err(|why| refuse(&Value::TypedJson { text, sql }, why))?) }
        }
        // The copy's text; a document blue's own comparison found typed is marked by a leading 0 byte.
        (BlueType::Json, Value::Bytes(b)) => match b.first() {
            Some(0) => return Err(refuse(&Value::Bytes(b.slice(1..)), json::TYPED)),
            _ => {
                let text = std::str::from_utf8(&b).map_err(|_| refuse(&Value::Bytes(b.clone()), "a JSON text that is not UTF-8: report it"))?;
                Value::Json { jsonb: true, text: Utf8Bytes::from_string(json::jsonb(text).map_err(|why| refuse(&Value::Bytes(b.clone()), why))?) }
            }
        },
        (BlueType::Enum { members }, v @ (Value::UInt8(_) | Value::Int8(_))) => {
            members::enum_value(members, &v).ok_or_else(|| refuse(&v, members::ENUM_BEYOND))?
        }
        (BlueType::Set { members }, v @ (Value::UInt8(_) | Value::Int8(_))) => {
            members::set_value(members, &v).ok_or_else(|| refuse(&v, members::SET_BEYOND))?
        }
        (_, other) => return Err(refuse(&other, "a value of another kind than the column's type: report it")),
    })
}

/// A MySQL date or datetime text with a zero year, month or day.
fn zero_date(text: &str) -> bool {
    let mut parts = text.get(..10).unwrap_or(text).split('-');
    let mut zero = |_: &str| parts.next().is_none_or(|p| p.trim_start_matches('0').is_empty());
    zero("year") || zero("month") || zero("day")
}

mod back;
mod bits;
mod defaults;
mod json;
mod members;
mod points;
mod strings;
#[cfg(test)]
mod tests;
