//! Whether a JSON text keeps its value in Oracle MySQL's JSON type — for text a MariaDB side sends
//! (its JSON is text) into a MySQL JSON column, which parses it.
//!
//! MySQL keeps a number as a signed or unsigned 64-bit integer, or else as a double, and an object's
//! key once (the last one written). A text holding a number no such value equals
//! (`12345678901234567.89`, `123456789012345678901`, `1e400`) or a key twice would be stored as
//! something else than the side it came from holds, so it is refused, naming what would change.
//! Anything else MySQL changes — key order, spacing, escapes, `1.50` printed `1.5` — keeps the value.
//! A text that is not JSON at all is left to MySQL, which refuses it.

use std::collections::HashSet;

/// `Err` names the number or key MySQL's JSON would not keep as `text` has it.
pub fn exact_in_mysql(text: &[u8]) -> Result<(), String> {
    // Per open container: the keys of an object (`None` for an array), and whether a key is next.
    let mut open: Vec<(Option<HashSet<String>>, bool)> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => {
                open.push((Some(HashSet::new()), true));
                i += 1;
            }
            b'[' => {
                open.push((None, false));
                i += 1;
            }
            b'}' | b']' => {
                open.pop();
                i += 1;
            }
            b',' => {
                if let Some((Some(_), next_is_key)) = open.last_mut() {
                    *next_is_key = true;
                }
                i += 1;
            }
            b'"' => {
                let (s, end) = string(text, i + 1);
                if let Some((Some(keys), next_is_key)) = open.last_mut() {
                    if *next_is_key {
                        *next_is_key = false;
                        if !keys.insert(s.clone()) {
                            return Err(format!("the document has the key \"{s}\" twice in one object; MySQL's JSON keeps only the last"));
                        }
                    }
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len() && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let number = String::from_utf8_lossy(&text[start..i]);
                if !number_exact(&number) {
                    return Err(format!(
                        "the document's number {number} has no equal in MySQL's JSON, which keeps 64-bit integers and doubles (it would \
                         store {})",
                        number.parse::<f64>().map_or_else(|_| "nothing".to_owned(), |f| f.to_string())
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The string starting at `at` (after its opening quote), unescaped, and the index after it.
fn string(text: &[u8], at: usize) -> (String, usize) {
    let mut bytes = Vec::new();
    let mut i = at;
    while i < text.len() {
        match text[i] {
            b'"' => return (decode(&bytes), i + 1),
            b'\\' if i + 1 < text.len() => {
                // Decoded, so two spellings of one key (`\u0061` and `a`, a surrogate pair and the
                // character) are one key.
                let next = text[i + 1];
                if let Some(unit) = (next == b'u').then(|| hex4(text, i + 2)).flatten() {
                    let low = hex4(text, i + 8).filter(|low| (0xDC00..0xE000).contains(low) && text.get(i + 6..i + 8) == Some(b"\\u"));
                    let (c, len) = match low {
                        Some(low) if (0xD800..0xDC00).contains(&unit) => (char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)), 12),
                        _ => (char::from_u32(unit), 6),
                    };
                    if let Some(c) = c {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += len;
                        continue;
                    }
                }
                bytes.push(match next {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 8,
                    b'f' => 12,
                    other => other,
                });
                i += 2;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    (decode(&bytes), i)
}

/// The four hex digits at `at`, as a number.
fn hex4(text: &[u8], at: usize) -> Option<u32> {
    text.get(at..at + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok())
}

fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether MySQL's JSON holds `number` as it is written: an integer within 64 bits, or a number
/// whose double is the same decimal value.
fn number_exact(number: &str) -> bool {
    let integral = !number.contains(['.', 'e', 'E']);
    if integral && (number.parse::<i64>().is_ok() || number.parse::<u64>().is_ok()) {
        return true;
    }
    match number.parse::<f64>() {
        Ok(f) if f.is_finite() => decimal(number) == decimal(&format!("{f:e}")),
        _ => false,
    }
}

/// A decimal number's value as (negative, significant digits, exponent of the first digit); zero
/// has no digits and no sign.
fn decimal(number: &str) -> (bool, String, i64) {
    let (negative, rest) = number.strip_prefix('-').map_or((false, number), |r| (true, r));
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(e) => (&rest[..e], rest[e + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    let point = i64::try_from(int.len()).unwrap_or(0) - i64::try_from(leading).unwrap_or(0);
    (negative, significant.to_owned(), exponent + point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_mysql_holds_as_written_pass() {
        for ok in [
            "0",
            "-0",
            "1.50",
            "0.1",
            "-2.5e-300",
            "1e300",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1500e-3",
            "0.000015e5",
            "1.7976931348623157e308",
        ] {
            assert!(number_exact(ok), "{ok}");
        }
    }

    #[test]
    fn numbers_mysql_would_change_are_refused() {
        for changed in ["12345678901234567.89", "18446744073709551616", "123456789012345678901", "0.1000000000000000000001", "1e400", "-1e400"] {
            assert!(!number_exact(changed), "{changed}");
        }
    }

    #[test]
    fn documents_are_refused_naming_the_number_or_the_twice_written_key() {
        assert!(exact_in_mysql(br#"{"b": 2, "a": [1.0, "x", {"a": 1}], "s": "1e400 \" {"}"#).is_ok());
        let e = exact_in_mysql(br#"{"amt": 12345678901234567.89}"#).expect_err("lossy");
        assert!(e.contains("12345678901234567.89") && e.contains("12345678901234568"), "{e}");
        let e = exact_in_mysql(br#"{"a": 1, "b": {"c": 1}, "a": 2}"#).expect_err("twice");
        assert!(e.contains("\"a\" twice"), "{e}");
        assert!(exact_in_mysql(br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_ok(), "one key per object");
        assert!(exact_in_mysql(br#"{"\u0061": 1, "a": 2}"#).is_err(), "one key in two spellings");
        assert!(exact_in_mysql("{\"\\ud83d\\ude00\": 1, \"😀\": 2}".as_bytes()).is_err(), "a surrogate pair is its character");
        assert!(exact_in_mysql(br#"{"\ud83d\ude00": 1, "ud83dude00": 2}"#).is_ok());
    }
}
