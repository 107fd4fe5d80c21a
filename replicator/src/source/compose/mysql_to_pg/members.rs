//! `ENUM` and `SET` in the type map: their members as blue's catalog prints them, green's `CHECK`
//! keeping a value to them, and the member text of the index or bit mask both paths carry.

use turnout_decoders::value::Utf8Bytes;
use turnout_decoders::Value;

/// What `check` says of an `ENUM` column.
pub(super) const ENUM_NOTE: &str = "a member's text (or blue's empty error value); ORDER BY sorts it as text on green, by member order on blue";
/// What `check` says of a `SET` column.
pub(super) const SET_NOTE: &str = "its members' text in member order, comma-separated, as blue prints it";
/// Why an index is refused.
pub(super) const ENUM_BEYOND: &str = "an ENUM index beyond the column's members: report it";
/// Why a mask is refused.
pub(super) const SET_BEYOND: &str = "a SET bit beyond the column's members: report it";

/// The members of an `enum('a','b''c')` or `set(…)` as blue's catalog prints them (`''` for a quote,
/// a backslash escaping the next character); `None` when the text is not such a list.
pub(super) fn members(column_type: &str) -> Option<Vec<String>> {
    let open = column_type.find('(')?;
    let list = column_type.get(open + 1..column_type.rfind(')')?)?;
    let mut out = Vec::new();
    let mut chars = list.chars().peekable();
    loop {
        if chars.next()? != '\'' {
            return None;
        }
        let mut member = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => member.push(chars.next()?),
                c => member.push(c),
            }
        }
        out.push(member);
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// `text` as a PostgreSQL string literal.
pub(super) fn pg_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Green's `CHECK` of an `ENUM` (`{}` is the column): a member, or blue's empty error value.
pub(super) fn enum_check(members: &[String]) -> String {
    let listed: Vec<String> = std::iter::once("").chain(members.iter().map(String::as_str)).map(pg_literal).collect();
    format!("{{}} IN ({})", listed.join(", "))
}

/// Green's `CHECK` of a `SET`: empty, or every comma-separated part a member.
pub(super) fn set_check(members: &[String]) -> String {
    let listed: Vec<String> = members.iter().map(|m| pg_literal(m)).collect();
    format!("{{}} = '' OR string_to_array({{}}, ',') <@ ARRAY[{}]::text[]", listed.join(", "))
}

/// The member an `ENUM` index names (0: the empty error value); `None` beyond the members.
pub(super) fn enum_value(members: &[String], v: &Value) -> Option<Value> {
    let index = match v {
        Value::UInt8(u) => usize::try_from(*u).ok()?,
        Value::Int8(i) => usize::try_from(*i).ok()?,
        _ => return None,
    };
    match index {
        0 => Some(Value::Text(Utf8Bytes::from(""))),
        i => members.get(i - 1).map(|m| Value::Text(Utf8Bytes::from_string(m.clone()))),
    }
}

/// The members a `SET` mask names, in member order, comma-separated; `None` for a bit beyond them.
pub(super) fn set_value(members: &[String], v: &Value) -> Option<Value> {
    let mask = match v {
        Value::UInt8(u) => *u,
        Value::Int8(i) => i.cast_unsigned(),
        _ => return None,
    };
    if members.len() < 64 && mask >> members.len() != 0 {
        return None;
    }
    let set: Vec<&str> = members.iter().enumerate().filter(|(i, _)| mask & (1u64 << i) != 0).map(|(_, m)| m.as_str()).collect();
    Some(Value::Text(Utf8Bytes::from_string(set.join(","))))
}
