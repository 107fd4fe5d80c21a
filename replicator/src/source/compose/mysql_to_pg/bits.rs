//! `BIT(n)` as PostgreSQL's `bit(n)`: blue carries the value as ⌈n/8⌉ big-endian bytes (the binlog
//! and the binary protocol alike), green's text is its n bits, most significant first.

use turnout_decoders::value::Utf8Bytes;
use turnout_decoders::Value;

/// Green's text of blue's bytes of a `BIT(bits)`.
pub(super) fn text(bytes: &[u8], bits: u32) -> Result<Value, &'static str> {
    const BEYOND: &str = "more bits than the column's BIT(n): report it";
    if bytes.len() > 8 || !(1..=64).contains(&bits) {
        return Err(BEYOND);
    }
    let value = bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
    if bits < 64 && value >> bits != 0 {
        return Err(BEYOND);
    }
    let width = usize::try_from(bits).map_err(|_| BEYOND)?;
    Ok(Value::Text(Utf8Bytes::from_string(format!("{value:0width$b}"))))
}

/// Blue's ⌈bits/8⌉ big-endian bytes of green's text of a `bit(bits)`.
pub(super) fn bytes(text: &str, bits: u32) -> Option<Value> {
    if text.len() != usize::try_from(bits).ok()? || bits > 64 || !text.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let value = u64::from_str_radix(text, 2).ok()?;
    let length = usize::try_from(bits.div_ceil(8)).ok()?;
    Some(Value::Bytes(value.to_be_bytes()[8 - length..].to_vec().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_arrive_most_significant_first_and_go_back_as_the_same_bytes() {
        for (bytes, bits, printed) in [
            (vec![0x00], 1, "0"),
            (vec![0x01], 1, "1"),
            (vec![0x1F, 0xFF], 13, "1111111111111"),
            (vec![0x0A], 4, "1010"),
            (vec![0xFF; 8], 64, &"1".repeat(64)[..]),
            (vec![0x80, 0, 0, 0, 0, 0, 0, 1], 64, &format!("1{}1", "0".repeat(62))[..]),
        ] {
            assert_eq!(text(&bytes, bits), Ok(Value::Text(printed.into())), "{bytes:?} of BIT({bits})");
            assert_eq!(super::bytes(printed, bits), Some(Value::Bytes(bytes.clone().into())), "{printed}");
        }
        assert!(text(&[0x10], 4).is_err(), "a bit above the column's width");
        assert!(text(&[0; 9], 64).is_err());
        assert_eq!(bytes("101", 4), None, "green's bit(4) holds exactly 4 bits");
        assert_eq!(bytes("10a1", 4), None);
    }
}
