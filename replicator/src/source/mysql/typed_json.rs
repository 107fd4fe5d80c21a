//! Oracle MySQL JSON documents holding typed scalars (DECIMAL, DATE, TIME, DATETIME stored inside the
//! document), copied by the snapshot with their types.
//!
//! Over the protocol a JSON value arrives as text, which green would parse back into DOUBLEs and
//! strings. So the copy flags, per row, each document whose text does not rebuild it
//! ([`flag_sql`]: the value, the text or the stored size of the document parsed from its text
//! differs), copies the row as usual, and then — within the same snapshot — reads each flagged
//! document's scalars one by one (`JSON_TYPE` and the value at each path) and rewrites it on green with
//! the SQL that builds it with every type ([`turnout_decoders::mysql::binlog::json_typed`], the same
//! the stream uses). What SQL cannot show is a DECIMAL's declared precision: green's carries as many
//! digits as the value prints (its value, type, scale and text are blue's). A scalar no SQL expression
//! rebuilds with its type (TIMESTAMP, BLOB, BIT, GEOMETRY) stops the copy naming it, and so does a typed
//! document in a table without a primary key (its row cannot be found again).

use super::{qualified, quote, sql_error};
use crate::error::{Error, Side};
use mysql_async::prelude::Queryable;
use turnout_decoders::mysql::binlog::json_typed::Node;
use turnout_decoders::TableName;

/// A row's primary key: each column's name and value.
pub type Key = Vec<(String, mysql_async::Value)>;

/// Leaves asked about per statement.
const LEAVES_PER_QUERY: usize = 200;

/// A per-row expression: 1 when column `column`'s document is not rebuilt by its own text.
pub fn flag_sql(column: &str) -> String {
    let c = quote(column);
    format!(
        "({c} IS NOT NULL AND (CAST(CAST({c} AS CHAR) AS JSON) <> {c} OR CAST(CAST(CAST({c} AS CHAR) AS JSON) AS CHAR) <> CAST({c} AS CHAR) \
         OR JSON_STORAGE_SIZE(CAST(CAST({c} AS CHAR) AS JSON)) <> JSON_STORAGE_SIZE({c})))"
    )
}

/// One scalar of a document: its JSON path.
fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                let key = serde_json::to_string(k).unwrap_or_default();
                leaves(item, format!("{path}.{key}"), out);
            }
        }
        _ => out.push(path),
    }
}

/// The node of a scalar MySQL calls `kind` whose unquoted value is `text`.
fn scalar(kind: &str, text: String) -> Result<Node, String> {
    Ok(match kind {
        "NULL" => Node::Null,
        "BOOLEAN" => Node::Bool(text == "true"),
        "INTEGER" => Node::Int(text.parse().map_err(|_| format!("INTEGER '{text}'"))?),
        "UNSIGNED INTEGER" => Node::UInt(text.parse().map_err(|_| format!("UNSIGNED INTEGER '{text}'"))?),
        "DOUBLE" => Node::Double(text.parse().map_err(|_| format!("DOUBLE '{text}'"))?),
        "DECIMAL" => {
            let digits = text.bytes().filter(u8::is_ascii_digit).count();
            let scale = text.split_once('.').map_or(0, |(_, f)| f.len());
            let narrow = |n: usize| u8::try_from(n).map_err(|_| format!("DECIMAL '{text}' has too many digits"));
            Node::Decimal { precision: narrow(digits.max(1))?, scale: narrow(scale)?, text }
        }
        "STRING" => Node::Str(text),
        "DATE" => Node::Date(text),
        "TIME" => Node::Time(text),
        "DATETIME" => Node::DateTime(text),
        "TIMESTAMP" => Node::Opaque(7, Vec::new()),
        "BIT" => Node::Opaque(16, Vec::new()),
        "GEOMETRY" => Node::Opaque(255, Vec::new()),
        "BLOB" | "OPAQUE" => Node::Opaque(252, Vec::new()),
        other => return Err(format!("a JSON scalar of a type turnout does not know ({other})")),
    })
}

/// `v` with each scalar replaced by its typed node, taken in order from `typed`.
fn rebuild(v: &serde_json::Value, typed: &mut std::vec::IntoIter<Node>) -> Result<Node, String> {
    Ok(match v {
        serde_json::Value::Array(items) => Node::Array(items.iter().map(|i| rebuild(i, typed)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(map) => Node::Object(map.iter().map(|(k, i)| Ok((k.clone(), rebuild(i, typed)?))).collect::<Result<_, String>>()?),
        _ => typed.next().ok_or("fewer scalars than the document has")?,
    })
}

/// The SQL that builds, with every scalar's type, the document in `column` of the row of `table`
/// whose primary key is `key`, as `reader`'s snapshot shows it (`text` is the document's text).
pub async fn document_sql(
    reader: &mut mysql_async::Conn,
    table: &TableName,
    key: &[(String, mysql_async::Value)],
    column: &str,
    text: &str,
) -> Result<String, Error> {
    let fail = |why: String| Error::Setup(format!("column `{column}` of {table} holds a JSON document turnout cannot copy with its types: {why}"));
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| fail(format!("its text does not parse ({e})")))?;
    let mut paths = Vec::new();
    leaves(&doc, "$".into(), &mut paths);
    let condition: Vec<String> = key.iter().map(|(k, _)| format!("{} <=> ?", quote(k))).collect();
    let mut nodes = Vec::with_capacity(paths.len());
    for batch in paths.chunks(LEAVES_PER_QUERY) {
        let c = quote(column);
        let exprs: Vec<String> = batch.iter().map(|_| format!("JSON_TYPE(JSON_EXTRACT({c}, ?)), JSON_UNQUOTE(JSON_EXTRACT({c}, ?))")).collect();
        let sql = format!("SELECT {} FROM {} WHERE {}", exprs.join(", "), qualified(table), condition.join(" AND "));
        let mut params: Vec<mysql_async::Value> = Vec::with_capacity(batch.len() * 2 + key.len());
        for p in batch {
            params.push(p.as_str().into());
            params.push(p.as_str().into());
        }
        params.extend(key.iter().map(|(_, v)| v.clone()));
        let row: Option<mysql_async::Row> =
            reader.exec_first(sql, params).await.map_err(|e| sql_error(crate::error::Side::Blue, &format!("reading the typed JSON of {table}.{column}"), e))?;
        let row = row.ok_or_else(|| fail("its row was not found again by its primary key".into()))?;
        for i in 0..batch.len() {
            let text_at = |j: usize| -> String {
                match row.as_ref(j) {
                    Some(mysql_async::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                }
            };
            nodes.push(scalar(&text_at(2 * i), text_at(2 * i + 1)).map_err(fail)?);
        }
    }
    let node = rebuild(&doc, &mut nodes.into_iter()).map_err(fail)?;
    node.to_sql().map_err(fail)
}

/// Rewrites on green (`green`) the document in `column` of `table`'s row whose primary key is `key`
/// with `sql` (from [`document_sql`]). Through a JSON `null` first: MySQL leaves a row as it is when the
/// new document compares equal to the old one (`[3]` and `[3]` with a DECIMAL 3), types aside.
pub async fn rewrite(green: &mut mysql_async::Conn, table: &TableName, key: &[(String, mysql_async::Value)], column: &str, sql: &str) -> Result<(), Error> {
    let condition: Vec<String> = key.iter().map(|(k, _)| format!("{} <=> ?", quote(k))).collect();
    let params: Vec<mysql_async::Value> = key.iter().map(|(_, v)| v.clone()).collect();
    for value in ["CAST('null' AS JSON)", sql] {
        let statement = format!("UPDATE {} SET {} = {value} WHERE {}", qualified(table), quote(column), condition.join(" AND "));
        green.exec_drop(statement, params.clone()).await.map_err(Error::mysql(Side::Green, format!("writing the typed JSON of {table}.{column}")))?;
        if green.affected_rows() != 1 {
            return Err(Error::Setup(format!(
                "rewriting the typed JSON of one row of {table} on green touched {} rows, not 1: green differs from blue (run turnout verify)",
                green.affected_rows()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_rebuilt_from_its_structure_and_each_scalars_type() {
        let doc: serde_json::Value = serde_json::from_str(r#"{"a": [1, 2.5, "x"], "p": 1.5, "w\"k": {}}"#).expect("json");
        let mut paths = Vec::new();
        leaves(&doc, "$".into(), &mut paths);
        assert_eq!(paths, ["$.\"a\"[0]", "$.\"a\"[1]", "$.\"a\"[2]", "$.\"p\""], "an empty object has no scalar");
        let typed = vec![
            scalar("UNSIGNED INTEGER", "1".into()).expect("u"),
            scalar("DOUBLE", "2.5".into()).expect("d"),
            scalar("DATE", "2024-01-02".into()).expect("date"),
            scalar("DECIMAL", "1.50".into()).expect("decimal"),
        ];
        let node = rebuild(&doc, &mut typed.into_iter()).expect("tree");
        let sql = node.to_sql().expect("sql");
        assert!(sql.contains("CAST(1 AS UNSIGNED)") && sql.contains("CAST('2024-01-02' AS DATE)") && sql.contains("CAST('1.50' AS DECIMAL(3,2))"), "{sql}");
        assert!(sql.contains("JSON_OBJECT()"), "an empty object stays one: {sql}");
        assert!(scalar("TIMESTAMP", "x".into()).expect("opaque").to_sql().expect_err("refused").contains("TIMESTAMP"));
        assert!(scalar("SOMETHING", "x".into()).is_err());
    }
}
