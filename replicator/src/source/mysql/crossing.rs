//! Across the MySQL family: an Oracle MySQL blue with a MariaDB green, or a MariaDB blue with an
//! Oracle MySQL green.
//!
//! Rows cross exactly: every value is written as the bytes or digits blue logged (see
//! `turnout_sinks::mysql::literal`), and MySQL's binary JSON becomes its own text on MariaDB, whose
//! JSON is text. What can differ is the schema `SHOW CREATE TABLE` carries over, so before creating
//! anything turnout checks each replicated column against green's family:
//!
//! - **Generated columns** must compute alike: green computes them itself (MariaDB does not even log
//!   them), so only arithmetic on columns crosses; any function, cast, string or division is refused.
//!   MySQL's INVISIBLE columns are refused toward MariaDB, which ignores the versioned comment MySQL
//!   prints the attribute in.
//! - **Types one family lacks** are refused, naming the column and the fix: MariaDB's `UUID`,
//!   `INET4`, `INET6` and `VECTOR`, MySQL's `VECTOR`, and MySQL geometry restricted to an SRID (MariaDB
//!   has no such restriction, and MySQL orders a geographic SRID's axes its own way). MariaDB
//!   sequences have no MySQL equivalent and are refused too.
//! - **Collations** must exist on green under the same name (checked for the tables turnout
//!   creates). Most do, with the same rules on both: `utf8mb4_general_ci`, `utf8mb4_unicode_ci`,
//!   `utf8mb4_unicode_520_ci`, `utf8mb4_bin`, `utf8mb4_0900_bin`, the 8-bit ones. MariaDB's
//!   `uca1400` collations (11.x's default) have no MySQL equivalent and are refused.
//! - **MySQL's UCA 9.0 collations** (`utf8mb4_0900_ai_ci` and the other `_0900_` ones but `_bin`)
//!   exist on MariaDB 11.4 and later under the same names but follow UCA 14.0: characters added in
//!   Unicode 10 to 14 compare and sort differently (`U+A7C0` equals `U+A7C1` there, not on MySQL).
//!   That is reported, not refused: values are still copied byte for byte, a row is still found by
//!   its exact key, and the one effect on replication — two keys distinct on blue equal on green —
//!   stops the apply with a duplicate-key error naming the row. The application's `ORDER BY` and
//!   comparisons on green follow green's rules, as after any upgrade across them.

use super::{quote, sql_error};
use crate::error::{Error, SchemaRefusal};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, HashSet};
use turnout_decoders::TableName;

/// What crossing from blue's family to green's means for the replicated tables.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Crossing {
    /// `MariaDB 11.8.9 → Oracle MySQL 9.7.4`.
    pub families: String,
    /// What has no exact equivalent on green, each with the fix.
    pub refused: Vec<(String, String)>,
    /// What carries over under green's rules where they differ from blue's, each with what follows.
    pub differs: Vec<(String, String)>,
}

impl Crossing {
    /// The refusal as one error: every object and its fix.
    pub fn refusal(&self) -> Option<Error> {
        if self.refused.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.refused.iter().map(|(what, fix)| format!("{what} — {fix}")).collect();
        Some(SchemaRefusal::NotPortable { families: self.families.to_string(), refused: lines.join("; ") }.into())
    }
}

/// Types one family has and the other lacks: (data type, family that has it, the fix).
const TYPES_WITHOUT_EQUIVALENT: &[(&str, bool, &str)] = &[
    ("uuid", true, "change it on blue to CHAR(36) (ALTER TABLE … MODIFY … CHAR(36) keeps the text) or leave the table out with tables.exclude"),
    ("inet6", true, "change it on blue to VARCHAR(39) or VARBINARY(16) or leave the table out with tables.exclude"),
    ("inet4", true, "change it on blue to VARCHAR(15) or INT UNSIGNED or leave the table out with tables.exclude"),
    ("vector", true, "leave the table out with tables.exclude: MariaDB's VECTOR and MySQL's store and compare differently"),
    ("vector", false, "leave the table out with tables.exclude: MySQL's VECTOR and MariaDB's store and compare differently"),
];

/// MySQL's UCA 9.0 collations MariaDB 11.4+ knows by name under UCA 14.0 rules.
fn renamed_uca(collation: &str) -> bool {
    collation.contains("_0900_") && !collation.ends_with("_bin")
}

fn family(mariadb: bool) -> &'static str {
    if mariadb {
        "MariaDB"
    } else {
        "Oracle MySQL"
    }
}

/// Green's collation names: MariaDB 10.10+ lists the character-set-qualified ones
/// (`utf8mb4_uca1400_ai_ci`) apart from `COLLATIONS`.
async fn collations(green: &mut mysql_async::Conn, mariadb: bool) -> Result<HashSet<String>, Error> {
    let mut names: Vec<String> = green
        .query("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .map_err(|e| sql_error(crate::error::Side::Green, "listing collations", e))?;
    if mariadb {
        if let Ok(full) = green.query::<String, _>("SELECT FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY").await {
            names.extend(full);
        }
    }
    Ok(names.into_iter().collect())
}

/// Whether a generated column's expression computes the same on both families: only column names,
/// numbers, `+`, `-`, `*` and parentheses (no division, whose precision is a session setting, and no
/// function, cast, string or collation, which the families implement apart).
fn portable_expression(expression: &str) -> bool {
    let mut quoted = false;
    expression.chars().all(|c| {
        if c == '`' {
            quoted = !quoted;
            return true;
        }
        quoted || c.is_ascii_digit() || matches!(c, ' ' | '.' | '+' | '-' | '*' | '(' | ')')
    }) && !quoted
}

/// Checks `tables` (all in `database`) for a crossing between blue's and green's families; `None`
/// when both are of one family. `created`: the tables turnout will create on green from blue's
/// definitions, whose collations must exist there too.
pub async fn assess(
    blue: &mut mysql_async::Conn,
    green: &mut mysql_async::Conn,
    database: &str,
    tables: &[TableName],
    created: &[TableName],
) -> Result<Option<Crossing>, Error> {
    let (blue_version, green_version) = (super::version(blue, crate::error::Side::Blue).await?, super::version(green, crate::error::Side::Green).await?);
    let blue_maria = blue_version.to_ascii_lowercase().contains("mariadb");
    let green_maria = green_version.to_ascii_lowercase().contains("mariadb");
    if blue_maria == green_maria {
        return Ok(None);
    }
    let mut c = Crossing { families: format!("{} {blue_version} to {} {green_version}", family(blue_maria), family(green_maria)), ..Crossing::default() };
    let names: HashSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let columns: Vec<ColumnRow> = blue
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLLATION_NAME, COALESCE(GENERATION_EXPRESSION, ''), UPPER(EXTRA) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading the columns to compare with green's family", e))?;
    let columns: Vec<ColumnRow> = columns.into_iter().filter(|(t, ..)| names.contains(t.as_str())).collect();
    let families = (blue_maria, green_maria);
    columns_crossing(&mut c, &columns, created, families);
    green_generated(&mut c, green, database, &names, created, blue_maria).await?;
    family_only(&mut c, blue, database, &names, blue_maria).await?;
    if !created.is_empty() {
        collations_crossing(&mut c, blue, green, database, &columns, created, green_maria).await?;
    }
    Ok(Some(c))
}

/// The columns of blue's replicated tables `columns`, one row each.
type ColumnRow = (String, String, String, Option<String>, String, String);

/// Blue's columns of a type green's family lacks, and, in the tables turnout creates on green,
/// generated columns green may compute differently and INVISIBLE columns MariaDB would not keep.
fn columns_crossing(c: &mut Crossing, columns: &[ColumnRow], created: &[TableName], (blue_maria, green_maria): (bool, bool)) {
    let column = |t: &str, c: &str| format!("column {}.{}", quote(t), quote(c));
    for (t, col, data_type, _, expression, extra) in columns {
        for (ty, maria, fix) in TYPES_WITHOUT_EQUIVALENT {
            if data_type == ty && *maria == blue_maria {
                c.refused.push((
                    format!("{} is {}'s {}, which {} does not have", column(t, col), family(blue_maria), ty.to_uppercase(), family(green_maria)),
                    (*fix).to_owned(),
                ));
            }
        }
        // Green computes generated columns itself (MariaDB does not even log them), so their
        // expression must compute the same there (a table green already has: green's own, below).
        let creates = created.iter().any(|x| &x.name == t);
        if creates && !expression.is_empty() && !portable_expression(expression) {
            c.refused.push((
                format!("{} is generated as ({expression}), which {} may compute differently", column(t, col), family(green_maria)),
                "make it a plain column on blue that the application fills, or leave the table out with tables.exclude".into(),
            ));
        }
        // MySQL prints INVISIBLE in a versioned comment (`/*!80023 INVISIBLE */`) MariaDB ignores.
        if creates && !blue_maria && extra.split_whitespace().any(|w| w == "INVISIBLE") {
            c.refused.push((
                format!("{} is INVISIBLE, which MariaDB would not keep from blue's definition", column(t, col)),
                "create the table on green yourself with the column INVISIBLE, or make it visible on blue".into(),
            ));
        }
    }
}

/// Green's own generated columns in tables green already has, which may compute differently from
/// blue's family.
async fn green_generated(
    c: &mut Crossing,
    green: &mut mysql_async::Conn,
    database: &str,
    names: &HashSet<&str>,
    created: &[TableName],
    blue_maria: bool,
) -> Result<(), Error> {
    let column = |t: &str, c: &str| format!("column {}.{}", quote(t), quote(c));
    let existing: Vec<(String, String, String)> = green
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND GENERATION_EXPRESSION <> ''",
            (database,),
        )
        .await
        .map_err(|e| sql_error(crate::error::Side::Green, "reading the generated columns", e))?;
    for (t, col, expression) in existing {
        if names.contains(t.as_str()) && !created.iter().any(|x| x.name == t) && !portable_expression(&expression) {
            c.refused.push((
                format!("green's {} is generated as ({expression}), which may compute differently from blue's {}", column(&t, &col), family(blue_maria)),
                if blue_maria {
                    "leave the table out with tables.exclude: MariaDB does not log generated values, so green must compute them alike".into()
                } else {
                    "make it a plain column on green, which then takes the values blue logs, or leave the table out with tables.exclude".into()
                },
            ));
        }
    }
    Ok(())
}

/// What only one family has: Oracle MySQL's SRID-restricted geometry columns, MariaDB's sequences.
async fn family_only(c: &mut Crossing, blue: &mut mysql_async::Conn, database: &str, names: &HashSet<&str>, blue_maria: bool) -> Result<(), Error> {
    let column = |t: &str, c: &str| format!("column {}.{}", quote(t), quote(c));
    if !blue_maria {
        let srid: Vec<(String, String, u32)> = blue
            .exec("SELECT TABLE_NAME, COLUMN_NAME, SRS_ID FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND SRS_ID IS NOT NULL", (database,))
            .await
            .map_err(|e| sql_error(crate::error::Side::Blue, "reading the geometry columns' SRIDs", e))?;
        for (t, col, srid) in srid.into_iter().filter(|(t, ..)| names.contains(t.as_str())) {
            c.refused.push((
                format!("{} is geometry restricted to SRID {srid}, which MariaDB cannot restrict a column to", column(&t, &col)),
                "drop the SRID attribute on blue (ALTER TABLE … MODIFY the column without SRID) or leave the table out with tables.exclude".into(),
            ));
        }
    } else {
        for s in super::catalog::sequences(blue, database).await? {
            c.refused.push((
                format!("sequence {} has no Oracle MySQL equivalent", quote(&s)),
                "replace its use on blue with an AUTO_INCREMENT column and drop it".into(),
            ));
        }
    }
    Ok(())
}

/// The collations of the tables turnout creates on green: refused where green's family lacks one,
/// a difference where the two families follow different UCA versions under one name.
async fn collations_crossing(
    c: &mut Crossing,
    blue: &mut mysql_async::Conn,
    green: &mut mysql_async::Conn,
    database: &str,
    columns: &[ColumnRow],
    created: &[TableName],
    green_maria: bool,
) -> Result<(), Error> {
    let column = |t: &str, c: &str| format!("column {}.{}", quote(t), quote(c));
    let names: HashSet<&str> = created.iter().map(|t| t.name.as_str()).collect();
    let known = collations(green, green_maria).await?;
    let table_collations: Vec<(String, Option<String>)> = blue
        .exec("SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (database,))
        .await
        .map_err(|e| sql_error(crate::error::Side::Blue, "reading the tables' collations", e))?;
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut renamed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let used = columns
        .iter()
        .filter(|(t, ..)| names.contains(t.as_str()))
        .filter_map(|(t, col, _, coll, ..)| coll.as_ref().map(|k| (k.clone(), column(t, col))))
        .chain(table_collations.into_iter().filter(|(t, _)| names.contains(t.as_str())).filter_map(|(t, k)| k.map(|k| (k, format!("table {}", quote(&t))))));
    for (collation, what) in used {
        if !known.contains(&collation) {
            missing.entry(collation).or_default().push(what);
        } else if renamed_uca(&collation) {
            renamed.entry(collation).or_default().push(what);
        }
    }
    for (collation, users) in missing {
        c.refused.push((
            format!("collation {collation} ({}) does not exist on {}", users.join(", "), family(green_maria)),
            "convert those columns on blue to a collation both families define alike (utf8mb4_unicode_520_ci, utf8mb4_general_ci, \
             utf8mb4_bin), or create the tables on green yourself with the collation you choose"
                .into(),
        ));
    }
    for (collation, users) in renamed {
        c.differs.push((
            format!(
                "collation {collation} ({}) follows UCA 9.0 on Oracle MySQL and UCA 14.0 on MariaDB: characters added in Unicode 10 to 14 \
                 compare and sort differently",
                users.join(", ")
            ),
            "values are copied byte for byte; two keys that are distinct on blue but equal on green stop replication with a \
             duplicate-key error naming the row, and green's ORDER BY follows UCA 14.0"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mysqls_uca_9_collations_change_rules_under_their_name() {
        assert!(renamed_uca("utf8mb4_0900_ai_ci"));
        assert!(renamed_uca("utf8mb4_de_pb_0900_as_cs"));
        assert!(!renamed_uca("utf8mb4_0900_bin"), "code point order on both");
        assert!(!renamed_uca("utf8mb4_unicode_520_ci"));
    }

    #[test]
    fn only_arithmetic_on_columns_is_computed_alike_by_both_families() {
        assert!(portable_expression("`id` * 2"));
        assert!(portable_expression("(`a b` + `c`) - 1.5"));
        assert!(!portable_expression("`id` / 3"), "division's precision is a session setting");
        assert!(!portable_expression("upper(`s`)"));
        assert!(!portable_expression("json_extract(`j`,_utf8mb4'$.a')"));
        assert!(!portable_expression("`unclosed"));
    }

    #[test]
    fn a_refusal_names_every_object_and_its_fix() {
        let c = Crossing {
            families: "MariaDB 11.8 to Oracle MySQL 9.7".into(),
            refused: vec![("column `t`.`u` is MariaDB's UUID".into(), "change it".into()), ("sequence `s`".into(), "replace it".into())],
            differs: vec![],
        };
        let e = c.refusal().expect("refused").to_string();
        assert!(e.contains("`t`.`u` is MariaDB's UUID — change it; sequence `s` — replace it"), "{e}");
        assert!(Crossing::default().refusal().is_none());
    }
}
