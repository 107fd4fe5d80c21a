//! A single-byte character set of blue's other than UTF-8's (`latin1`, `latin2`, `cp1251`, `koi8r`,
//! …): each byte's character exactly as blue's own server converts it, read from blue when its
//! catalog is, so the copy, the stream and `verify` decode a byte one way and that way is blue's.
//!
//! A byte is carried only when blue's conversion is a round trip for it: the character it converts
//! the byte to converts back to the same byte. The others — bytes the set leaves unassigned, which
//! blue converts to `?` or U+FFFD, and a second byte for a character another byte already spells
//! (`armscii8`'s second apostrophe) — have no character of their own on green: `check` counts the
//! rows holding one by the same round trip on blue, and the converter refuses such a value naming
//! row and column. Multi-byte sets (`sjis`, `gbk`, `utf16`, …) are not single-byte and stay refused
//! by name.

/// Blue's conversion of one byte of a set: the byte, its character in UTF-8 and the bytes that
/// character converts back to (NULL where blue has no character for the byte).
pub(crate) type Converted = (u8, Option<Vec<u8>>, Option<Vec<u8>>);

/// A single-byte character set as blue converts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SingleByte {
    /// The set's name on blue (`cp1251`).
    pub name: String,
    /// Each byte's character, `None` where blue's conversion is no round trip.
    chars: Vec<Option<char>>,
    /// The ids of the set's collations (as a binlog table map names a column's).
    pub collations: Vec<u16>,
}

impl SingleByte {
    /// The set `name` from blue's conversion of each byte: `(byte, its character's UTF-8, the bytes
    /// that character converts back to)` — NULL where blue has no character for the byte (Oracle
    /// MySQL's `ascii` above 0x7F) — and the set's collation ids. `None` when a byte's conversion is
    /// not one character, or not every one of the 256 bytes was converted.
    pub(crate) fn from_blue(name: String, converted: &[Converted], collations: Vec<u16>) -> Option<SingleByte> {
        let mut chars = vec![None; 256];
        for (byte, utf8, back) in converted {
            let Some(utf8) = utf8 else { continue };
            let text = std::str::from_utf8(utf8).ok()?;
            let mut it = text.chars();
            let (Some(c), None) = (it.next(), it.next()) else { return None };
            if back.as_deref() == Some(&[*byte][..]) {
                chars[usize::from(*byte)] = Some(c);
            }
        }
        (converted.len() == 256).then_some(SingleByte { name, chars, collations })
    }

    /// Whether every byte has a character of its own.
    pub(crate) fn every_byte(&self) -> bool {
        self.chars.iter().all(Option::is_some)
    }

    /// The text `bytes` spell, or the first byte without a character of its own.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<String, u8> {
        bytes.iter().map(|&b| self.chars.get(usize::from(b)).copied().flatten().ok_or(b)).collect()
    }

    /// Whether a name is one blue's catalog could give a character set (letters, digits, `_`):
    /// what may be spliced into blue's SQL as a set's name.
    pub(crate) fn plain_name(name: &str) -> bool {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
}

/// Whether blue's character set `name` is one whose bytes are UTF-8. Not `ascii`: MariaDB stores
/// any byte in an `ascii` column (even in strict mode) and reads a byte above 0x7F as `?`, so it is
/// a single-byte set whose upper half has no character of its own.
pub(crate) fn utf8(name: &str) -> bool {
    matches!(name, "utf8mb4" | "utf8mb3" | "utf8")
}

impl SingleByte {
    /// Whether the set is `ascii`, whose carried characters are ASCII, which green's guard keeps
    /// its text to: the way back writes the text's bytes as they are.
    pub(crate) fn ascii(&self) -> bool {
        self.name == "ascii"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// MySQL's `latin1` as blue converts it (Windows-1252, whose five unassigned bytes are the C1
    /// controls of the same number), for tests that need a set without a server.
    pub(crate) fn latin1() -> SingleByte {
        const HIGH: [char; 32] = [
            '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}',
            '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
            '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
        ];
        let converted: Vec<Converted> = (0..=255u8)
            .map(|b| {
                let c = if (0x80..=0x9F).contains(&b) { HIGH[usize::from(b - 0x80)] } else { char::from(b) };
                (b, Some(c.to_string().into_bytes()), Some(vec![b]))
            })
            .collect();
        SingleByte::from_blue("latin1".into(), &converted, vec![5, 8, 15, 31, 47, 48, 49, 94]).expect("256 bytes")
    }

    #[test]
    fn a_byte_is_carried_only_where_blues_conversion_is_a_round_trip() {
        // Every byte a round trip but 0x98, which blue converts to `?` (as cp1251's), and `?` back to 0x3F.
        let mut converted: Vec<Converted> = (0..=255u8).map(|b| (b, Some(char::from(b).to_string().into_bytes()), Some(vec![b]))).collect();
        assert!(SingleByte::from_blue("x".into(), &converted, vec![]).expect("a set").every_byte());
        converted[0x98] = (0x98, Some(b"?".to_vec()), Some(b"?".to_vec()));
        let set = SingleByte::from_blue("cp1251".into(), &converted, vec![14]).expect("a set");
        assert!(!set.every_byte());
        assert_eq!(set.decode(&[0x97, 0x99]), Ok("\u{97}\u{99}".to_owned()), "its neighbours are carried");
        assert_eq!(set.decode(b"ab?"), Ok("ab?".to_owned()));
        assert_eq!(set.decode(&[b'a', 0x98, 0x99]), Err(0x98));
        assert!(latin1().every_byte());
        assert_eq!(latin1().decode(&[0x80, 0x81, 0xE9]), Ok("\u{20AC}\u{0081}é".to_owned()));
    }

    #[test]
    fn a_conversion_that_is_not_one_character_per_byte_is_no_single_byte_set() {
        let mut converted: Vec<Converted> = (0..=255u8).map(|b| (b, Some(vec![b & 0x7F]), Some(vec![b]))).collect();
        assert!(SingleByte::from_blue("x".into(), &converted[..255], vec![]).is_none(), "255 bytes");
        converted[0x41] = (0x41, Some(b"AB".to_vec()), Some(vec![0x41]));
        assert!(SingleByte::from_blue("x".into(), &converted, vec![]).is_none(), "two characters");
        converted[0x41] = (0x41, Some(vec![0xC3]), Some(vec![0x41]));
        assert!(SingleByte::from_blue("x".into(), &converted, vec![]).is_none(), "not UTF-8");
        // A byte blue has no character for (NULL) is one the set does not carry.
        converted[0x41] = (0x41, None, None);
        let set = SingleByte::from_blue("x".into(), &converted, vec![]).expect("a set");
        assert_eq!(set.decode(b"B"), Ok("B".to_owned()));
        assert_eq!(set.decode(b"A"), Err(0x41));
        assert!(SingleByte::plain_name("cp1251") && !SingleByte::plain_name("x'; DROP") && !SingleByte::plain_name(""));
    }
}
