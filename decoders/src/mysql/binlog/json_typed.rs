//! MySQL binary JSON documents that hold **typed scalars** — DECIMAL, DATE, TIME, DATETIME values stored
//! inside the document ("opaque" values, what `JSON_OBJECT('at', NOW())` or `CAST(price AS JSON)` of a
//! DECIMAL column writes) — as a tree ([`Node`]), and the SQL expression that builds the same binary
//! document on an Oracle MySQL green ([`Node::to_sql`]). Their text alone would be parsed back on green
//! as DOUBLEs and plain strings (`1.50` becoming the double `1.5`, a date a string).
//!
//! The expression keeps every scalar's type: objects `JSON_OBJECT` (MySQL orders the keys itself, as
//! its binary format does), arrays `JSON_ARRAY`, strings from their UTF-8 bytes, signed integers as
//! literals and unsigned ones `CAST(… AS UNSIGNED)` (MySQL picks the narrowest width for either, as
//! when the document was first written), doubles `CAST('…' AS DOUBLE)` from their shortest round-trip
//! digits, DECIMAL `CAST('…' AS DECIMAL(p,s))` with the precision and scale stored in the document,
//! dates, times and datetimes by `CAST` with six fractional digits. A TIMESTAMP, BLOB, BIT, GEOMETRY or
//! other opaque value has no SQL expression of its own type and is refused, naming it.

use std::fmt::Write;

/// One value of a JSON document with its MySQL type.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
    /// The digits as MySQL prints them, with the declared precision and scale.
    Decimal {
        text: String,
        precision: u8,
        scale: u8,
    },
    /// `YYYY-MM-DD`.
    Date(String),
    /// `[-]HH:MM:SS.ffffff`.
    Time(String),
    /// `YYYY-MM-DD HH:MM:SS.ffffff`.
    DateTime(String),
    /// Another opaque value: MySQL's field type and its bytes (refused by [`Node::to_sql`]).
    Opaque(u8, Vec<u8>),
    Array(Vec<Node>),
    /// Keys in the document's order.
    Object(Vec<(String, Node)>),
}

fn hex_string(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push_str("CONVERT('' USING utf8mb4)");
        return;
    }
    out.push_str("CONVERT(X'");
    for b in s.as_bytes() {
        let _ = write!(out, "{b:02X}");
    }
    out.push_str("' USING utf8mb4)");
}

/// The name MySQL's `JSON_TYPE` gives an opaque field type, for messages.
pub fn opaque_name(field_type: u8) -> &'static str {
    match field_type {
        7 => "TIMESTAMP",
        16 => "BIT",
        255 => "GEOMETRY",
        249..=252 => "BLOB",
        _ => "binary",
    }
}

impl Node {
    /// Whether the document holds a typed scalar (its text alone would not rebuild it).
    pub fn typed(&self) -> bool {
        match self {
            Node::Decimal { .. } | Node::Date(_) | Node::Time(_) | Node::DateTime(_) | Node::Opaque(..) => true,
            Node::Array(items) => items.iter().any(Node::typed),
            Node::Object(items) => items.iter().any(|(_, v)| v.typed()),
            _ => false,
        }
    }

    /// The SQL expression (Oracle MySQL) that builds this document with every scalar's type.
    pub fn to_sql(&self) -> Result<String, String> {
        let mut out = String::new();
        self.write_sql(&mut out)?;
        Ok(out)
    }

    fn write_sql(&self, out: &mut String) -> Result<(), String> {
        match self {
            Node::Null => out.push_str("CAST('null' AS JSON)"),
            Node::Bool(true) => out.push_str("CAST('true' AS JSON)"),
            Node::Bool(false) => out.push_str("CAST('false' AS JSON)"),
            Node::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Node::UInt(u) => {
                let _ = write!(out, "CAST({u} AS UNSIGNED)");
            }
            Node::Double(d) if d.is_finite() => {
                let _ = write!(out, "CAST('{d:e}' AS DOUBLE)");
            }
            Node::Double(d) => return Err(format!("double {d} is not a JSON number")),
            Node::Str(s) => hex_string(out, s),
            Node::Decimal { text, precision, scale } => {
                if !text.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.') {
                    return Err(format!("'{text}' is not a decimal"));
                }
                let _ = write!(out, "CAST('{text}' AS DECIMAL({},{}))", (*precision).max(1), scale);
            }
            Node::Date(t) | Node::Time(t) | Node::DateTime(t) => {
                if !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' ')) {
                    return Err(format!("'{t}' is not a date or time"));
                }
                let ty = match self {
                    Node::Date(_) => "DATE",
                    Node::Time(_) => "TIME(6)",
                    _ => "DATETIME(6)",
                };
                let _ = write!(out, "CAST('{t}' AS {ty})");
            }
            Node::Opaque(t, _) => return Err(format!("the document holds a typed {} scalar, which no SQL expression rebuilds with its type", opaque_name(*t))),
            Node::Array(items) => {
                out.push_str("JSON_ARRAY(");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_sql(out)?;
                }
                out.push(')');
            }
            Node::Object(items) => {
                out.push_str("JSON_OBJECT(");
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    hex_string(out, k);
                    out.push_str(", ");
                    v.write_sql(out)?;
                }
                out.push(')');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Node;

    #[test]
    fn a_typed_document_is_rebuilt_with_every_scalars_type() {
        let doc = Node::Object(vec![
            ("price".into(), Node::Decimal { text: "1.50".into(), precision: 5, scale: 2 }),
            ("at".into(), Node::DateTime("2024-01-02 03:04:05.123456".into())),
            ("day".into(), Node::Date("2024-01-02".into())),
            ("dur".into(), Node::Time("-10:11:12.000000".into())),
            ("list".into(), Node::Array(vec![Node::Int(-1), Node::UInt(7), Node::Double(2.5), Node::Bool(true), Node::Null, Node::Str("é'".into())])),
            ("".into(), Node::Str(String::new())),
        ]);
        assert!(doc.typed());
        assert_eq!(
            doc.to_sql().expect("sql"),
            "JSON_OBJECT(CONVERT(X'7072696365' USING utf8mb4), CAST('1.50' AS DECIMAL(5,2)), CONVERT(X'6174' USING utf8mb4), \
             CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), CONVERT(X'646179' USING utf8mb4), CAST('2024-01-02' AS DATE), \
             CONVERT(X'647572' USING utf8mb4), CAST('-10:11:12.000000' AS TIME(6)), CONVERT(X'6C697374' USING utf8mb4), \
             JSON_ARRAY(-1, CAST(7 AS UNSIGNED), CAST('2.5e0' AS DOUBLE), CAST('true' AS JSON), CAST('null' AS JSON), \
             CONVERT(X'C3A927' USING utf8mb4)), CONVERT('' USING utf8mb4), CONVERT('' USING utf8mb4))"
        );
        assert!(!Node::Array(vec![Node::Int(1), Node::Str("x".into())]).typed());
    }

    #[test]
    fn a_scalar_without_an_expression_of_its_type_is_refused_by_name() {
        let e = Node::Array(vec![Node::Opaque(7, vec![0; 8])]).to_sql().expect_err("timestamp");
        assert!(e.contains("TIMESTAMP"), "{e}");
        assert!(Node::Array(vec![Node::Opaque(252, vec![1])]).to_sql().expect_err("blob").contains("BLOB"));
        assert!(Node::Decimal { text: "1); DROP".into(), precision: 5, scale: 0 }.to_sql().is_err());
    }
}
