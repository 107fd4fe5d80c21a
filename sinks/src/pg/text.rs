//! Values → PostgreSQL text input form, the inverse of the decoder's text → value. Every value is sent
//! as text and cast to the column's type on the target, which is exact for every type (the text is the
//! source's own output with ISO dates, UTC, full float precision).

use turnout_decoders::value::Value;

/// The text input form of `v`; `None` for NULL. [`Value::Unchanged`] and binary values of unknown types
/// have no text form: the caller never asks for the former, and the latter is an error.
pub fn to_text(v: &Value) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Unchanged => return Err("an unchanged TOAST value has no text form".into()),
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::UInt8(i) => i.to_string(),
        Value::Oid(i) => i.to_string(),
        Value::Float4(f) => float_text(f64::from(*f), f.to_string()),
        Value::Float8(f) => float_text(*f, f.to_string()),
        Value::Numeric(t) | Value::Text(t) | Value::Temporal(_, t) | Value::Unknown { text: t, .. } => t.as_str().to_owned(),
        Value::Json { text, .. } => text.as_str().to_owned(),
        Value::TypedJson { .. } => return Err("a MySQL JSON document with typed scalars cannot be written to PostgreSQL".into()),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b.iter() {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Uuid(u) => {
            let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
        }
        Value::Array { elements, .. } => {
            let mut s = String::new();
            array_literal(elements, &mut s)?;
            s
        }
        Value::Binary { type_oid, .. } => return Err(format!("a binary-format value of type oid {type_oid} cannot be written as text")),
    }))
}

fn float_text(f: f64, display: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        display
    }
}

fn array_literal(elements: &[Value], out: &mut String) -> Result<(), String> {
    out.push('{');
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match e {
            Value::Null => out.push_str("NULL"),
            Value::Array { elements, .. } => array_literal(elements, out)?,
            other => {
                let text = to_text(other)?.unwrap_or_default();
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    Ok(())
}

/// Appends `v` escaped for `COPY`'s text format.
pub fn copy_escape(buf: &mut bytes::BytesMut, v: &str) {
    use bytes::BufMut;
    let bytes = v.as_bytes();
    let mut from = 0;
    for (i, b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        buf.put_slice(&bytes[from..i]);
        buf.put_slice(escaped);
        from = i + 1;
    }
    buf.put_slice(&bytes[from..]);
}

/// Appends one row of `COPY`'s text format: each value's text form ([`to_text`]) escaped, `\N` for
/// NULL, tab-separated, ending in a newline.
pub fn copy_row(buf: &mut bytes::BytesMut, row: &[Value]) -> Result<(), String> {
    use bytes::BufMut;
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b'\t');
        }
        match to_text(v)? {
            None => buf.put_slice(b"\\N"),
            Some(text) => copy_escape(buf, &text),
        }
    }
    buf.put_u8(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use turnout_decoders::pg::types::decode_text;

    fn round_trip(oid: u32, text: &str) {
        let v = decode_text(oid, Bytes::copy_from_slice(text.as_bytes())).expect("decodes");
        let back = to_text(&v).expect("encodes").expect("not null");
        let again = decode_text(oid, Bytes::from(back.clone())).expect("re-decodes");
        assert_eq!(format!("{v:?}"), format!("{again:?}"), "{text} -> {back}");
    }

    #[test]
    fn values_round_trip_through_text() {
        for (oid, text) in [
            (16, "t"),
            (21, "-32768"),
            (20, "9223372036854775807"),
            (701, "-Infinity"),
            (701, "1.7976931348623157e+308"),
            (701, "5e-324"),
            (700, "3.4028235e+38"),
            (701, "NaN"),
            (1700, "NaN"),
            (17, "\\x00ff10"),
            (2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            (1009, r#"{a,NULL,"NULL","with \"quote\"","back\\slash","x,y",""}"#),
            (1007, "{{1,2},{3,NULL}}"),
            (1009, "{}"),
        ] {
            round_trip(oid, text);
        }
    }

    #[test]
    fn unchanged_and_binary_values_have_no_text() {
        assert!(to_text(&Value::Unchanged).is_err());
        assert!(to_text(&Value::Binary { type_oid: 600, data: Bytes::new() }).is_err());
        assert_eq!(to_text(&Value::Null), Ok(None));
    }
}
