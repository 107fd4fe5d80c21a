//! `[convert]`: between two engines, the lossy mappings the operator accepts for named columns.

use crate::error::Error;
use serde::Deserialize;

/// `[convert]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConvertConfig {
    /// `[[convert.accept]]`: one entry per column whose values green cannot hold that the operator
    /// accepts to carry otherwise.
    #[serde(default)]
    pub accept: Vec<Accept>,
}

/// A lossy mapping accepted for one column.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// `database.table.column` on blue.
    pub column: String,
    /// What its values green cannot hold become: `"null"` (zero dates of a nullable `DATE`,
    /// `DATETIME` or `TIMESTAMP` column) or `"without-nul"` (text with its NUL bytes removed).
    #[serde(rename = "as")]
    pub becomes: String,
}

/// What an accepted column's values become.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Becomes {
    /// A zero date arrives as NULL.
    Null,
    /// A string's NUL bytes are removed.
    WithoutNul,
}

impl Becomes {
    /// The word the configuration uses.
    pub fn word(self) -> &'static str {
        match self {
            Becomes::Null => "null",
            Becomes::WithoutNul => "without-nul",
        }
    }
}

impl Accept {
    /// The column's `(database, table, column)` and what its values become; a clear error naming
    /// the entry otherwise.
    pub fn parse(&self, at: usize) -> Result<((String, String, String), Becomes), Error> {
        let key = format!("convert.accept[{at}]");
        let parts: Vec<&str> = self.column.split('.').collect();
        let [database, table, column] = parts.as_slice() else {
            return Err(Error::config(format!("{key}.column"), format!("'{}' is not database.table.column", self.column)));
        };
        if [database, table, column].iter().any(|p| p.is_empty()) {
            return Err(Error::config(format!("{key}.column"), format!("'{}' is not database.table.column", self.column)));
        }
        let becomes = match self.becomes.as_str() {
            "null" => Becomes::Null,
            "without-nul" => Becomes::WithoutNul,
            other => return Err(Error::config(format!("{key}.as"), format!("'{other}' is not \"null\" (zero dates) or \"without-nul\" (NUL bytes in text)"))),
        };
        Ok((((*database).to_owned(), (*table).to_owned(), (*column).to_owned()), becomes))
    }
}
