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

/// One column of a replicated table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// PostgreSQL type OID.
    pub type_oid: u32,
    /// `atttypmod`: -1 when the type has no modifier.
    pub type_modifier: i32,
    /// `schema.name` of a non-built-in type, from a pgoutput Type message.
    pub type_name: Option<String>,
    /// Part of the replica identity (primary key, chosen index, or every column under FULL).
    pub is_key: bool,
}

/// A replicated table as the source announced it. Column order is the source's order and is the
/// order of every row in change events for this table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The source's id for the table (PostgreSQL relation OID).
    pub relation_id: u32,
    pub name: TableName,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// Indexes of the key columns, in column order.
    pub fn key_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().enumerate().filter(|(_, c)| c.is_key).map(|(i, _)| i)
    }
}
