//! Table schemas as the source announces them (pgoutput Relation messages, MySQL table maps).

use std::fmt;

/// A schema-qualified table name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName { schema: schema.into(), name: name.into() }
    }

    /// The name quoted for SQL: `"schema"."name"` with embedded quotes doubled.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an SQL identifier with double quotes, doubling embedded quotes.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Which old-row columns the source logs for UPDATE and DELETE (`pg_class.relreplident`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key columns.
    Default,
    /// `n`: nothing; UPDATE and DELETE cannot be replicated.
    Nothing,
    /// `f`: every column.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From the `relreplident` byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }
}

/// A type's schema-qualified name as the source named it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeName {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A column's type as its source describes it — never translated, so a sink can check it against its
/// own column exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// PostgreSQL, from a pgoutput Relation message: the type oid and `atttypmod` (-1 when the type has
    /// no modifier), and the name from the Type message pgoutput sends for every type not created by
    /// initdb. For a domain column pgoutput names the domain's **base** type (and `pg_catalog` as an
    /// empty schema, normalized here to `pg_catalog`).
    Pg { oid: u32, modifier: i32, name: Option<TypeName> },
    /// MySQL/MariaDB, from a binlog table map (with `binlog_row_metadata = FULL`).
    MySql(MySqlType),
}

/// A MySQL/MariaDB column type as the binlog's table map describes it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MySqlType {
    /// `enum_field_types`, the **real** type: a STRING column written as ENUM (247) or SET (248) carries
    /// that code (e.g. 3 = LONG, 15 = VARCHAR, 246 = NEWDECIMAL, 252 = BLOB, 254 = STRING/CHAR).
    pub code: u8,
    /// The table map's metadata, normalized per type: FLOAT/DOUBLE — size in bytes (4/8);
    /// VARCHAR, VAR_STRING, STRING (CHAR/BINARY) — maximum length in **bytes**; BIT(n) — n;
    /// NEWDECIMAL — `precision << 8 | scale`; BLOB/TEXT/JSON/GEOMETRY — bytes of the length prefix
    /// (1 TINY, 2 plain, 3 MEDIUM, 4 LONG); TIME2/DATETIME2/TIMESTAMP2 — fractional-second digits;
    /// ENUM/SET — the value's size in bytes; 0 for types without metadata.
    pub meta: u16,
    /// `UNSIGNED` (numeric types).
    pub unsigned: bool,
    /// Collation id of a character column (`None` for binary and non-string columns).
    pub charset: Option<u16>,
    /// The member strings of an ENUM or SET column, in definition order.
    pub members: Vec<String>,
}

impl ColumnType {
    /// A PostgreSQL type without a name (built-in types).
    pub fn pg(oid: u32, modifier: i32) -> ColumnType {
        ColumnType::Pg { oid, modifier, name: None }
    }

    /// The PostgreSQL type oid, for PostgreSQL columns.
    pub fn pg_oid(&self) -> Option<u32> {
        match self {
            ColumnType::Pg { oid, .. } => Some(*oid),
            ColumnType::MySql(_) => None,
        }
    }
}

/// One column of a replicated table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// Part of the replica identity (primary key, chosen index, or every column under FULL).
    pub is_key: bool,
}

/// A replicated table as the source announced it. Column order is the source's order and is the
/// order of every row in change events for this table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The source's id for the table (PostgreSQL relation OID, MySQL table-map id).
    pub relation_id: u64,
    pub name: TableName,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
    /// Whether the source enforced foreign keys for the changes that carry this schema. MySQL and
    /// MariaDB flag the rows events of a session with `foreign_key_checks = 0`
    /// (`NO_FOREIGN_KEY_CHECKS`): their changes did not cascade on blue and must not on green.
    /// Always true for PostgreSQL, whose cascaded changes are in the log like any other.
    pub foreign_key_checks: bool,
}

impl TableSchema {
    /// Indexes of the key columns, in column order.
    pub fn key_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().enumerate().filter(|(_, c)| c.is_key).map(|(i, _)| i)
    }
}
