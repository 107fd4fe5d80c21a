//! A character set of blue's other than UTF-8's, decoded in Rust exactly as blue's own server
//! converts it to UTF-8, so the copy, the stream and `verify` decode a value one way and that way is
//! blue's:
//!
//! - **single-byte sets** (`latin1`, `latin2`, `cp1251`, `koi8r`, …): each byte's character read
//!   from blue when its catalog is. A byte is carried only when blue's conversion is a round trip
//!   for it: the character it converts the byte to converts back to the same byte. The others —
//!   bytes the set leaves unassigned, which blue converts to `?` or U+FFFD, and a second byte for a
//!   character another byte already spells (`armscii8`'s second apostrophe) — have no character of
//!   their own on green;
//! - **Unicode's fixed encodings** (`utf16` and `ucs2` big-endian, `utf16le`, `utf32`): code units
//!   decoded by their standard; a sequence that is no character (an unpaired surrogate, a code point
//!   above U+10FFFF) has none on green.
//!
//! `check` counts the rows holding a value without a character of its own by the same round trip on
//! blue, and the converter refuses such a value naming row and column. PostgreSQL's text holds no
//! U+0000 in any of them (the byte 0 of UTF-8). Other multi-byte sets (`sjis`, `gbk`, `big5`, …),
//! whose conversions are blue's own tables, stay refused by name.

/// Blue's conversion of one byte of a set: the byte, its character in UTF-8 and the bytes that
/// character converts back to (NULL where blue has no character for the byte).
pub(crate) type Converted = (u8, Option<Vec<u8>>, Option<Vec<u8>>);

/// A character set of blue's other than UTF-8 as blue converts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Encoding {
    /// The set's name on blue (`cp1251`, `utf16`).
    pub name: String,
    /// How its bytes spell characters.
    code: Code,
    /// The ids of the set's collations (as a binlog table map names a column's).
    pub collations: Vec<u16>,
}

/// How a set's bytes spell characters.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Code {
    /// One byte per character: each byte's character, `None` where blue's conversion is no round
    /// trip.
    Bytes(Vec<Option<char>>),
    /// UTF-16, big-endian (`utf16`) or little-endian (`utf16le`): surrogate pairs for the
    /// characters beyond U+FFFF.
    Utf16 { little_endian: bool },
    /// UCS-2, big-endian: the characters up to U+FFFF, each in two bytes.
    Ucs2,
    /// UTF-32, big-endian: each character in four bytes.
    Utf32,
}

impl Encoding {
    /// The set `name` from blue's conversion of each byte: `(byte, its character's UTF-8, the bytes
    /// that character converts back to)` — NULL where blue has no character for the byte (Oracle
    /// MySQL's `ascii` above 0x7F) — and the set's collation ids. `None` when a byte's conversion is
    /// not one character, or not every one of the 256 bytes was converted.
    pub(crate) fn from_blue(name: String, converted: &[Converted], collations: Vec<u16>) -> Option<Encoding> {
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
        (converted.len() == 256).then_some(Encoding { name, code: Code::Bytes(chars), collations })
    }

    /// Unicode's fixed encoding `name` (`utf16`, `utf16le`, `ucs2`, `utf32`), with the ids of its
    /// collations; `None` for another name.
    pub(crate) fn unicode(name: &str, collations: Vec<u16>) -> Option<Encoding> {
        Some(Encoding { name: name.to_owned(), code: unicode_code(name)?, collations })
    }

    /// Whether every byte sequence blue's column can hold has a character of its own (a single-byte
    /// set without an unassigned byte); a Unicode encoding can hold sequences that are no character.
    pub(crate) fn every_byte(&self) -> bool {
        match &self.code {
            Code::Bytes(chars) => chars.iter().all(Option::is_some),
            Code::Utf16 { .. } | Code::Ucs2 | Code::Utf32 => false,
        }
    }

    /// Whether one byte is one character (the byte 0 is then U+0000); otherwise the byte 0 is part
    /// of many characters' code units and only a decoded U+0000 is one.
    pub(crate) fn single_byte(&self) -> bool {
        matches!(self.code, Code::Bytes(_))
    }

    /// The text `bytes` spell, or the offset of the first byte that begins no character of its own.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<String, usize> {
        match &self.code {
            Code::Bytes(chars) => bytes.iter().enumerate().map(|(at, &b)| chars.get(usize::from(b)).copied().flatten().ok_or(at)).collect(),
            Code::Utf16 { little_endian } => {
                let units = units::<2, _, _>(bytes, |u| if *little_endian { u16::from_le_bytes(u) } else { u16::from_be_bytes(u) })?;
                let (mut out, mut at) = (String::with_capacity(bytes.len()), 0);
                for c in char::decode_utf16(units) {
                    let c = c.map_err(|_| at)?;
                    at += c.len_utf16() * 2;
                    out.push(c);
                }
                Ok(out)
            }
            Code::Ucs2 => {
                let units = units::<2, _, _>(bytes, u16::from_be_bytes)?;
                units.enumerate().map(|(i, u)| char::from_u32(u32::from(u)).ok_or(i * 2)).collect()
            }
            Code::Utf32 => {
                let units = units::<4, _, _>(bytes, u32::from_be_bytes)?;
                units.enumerate().map(|(i, u)| char::from_u32(u).ok_or(i * 4)).collect()
            }
        }
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

/// Whether blue's character set `name` is one of Unicode's fixed encodings ([`Encoding::unicode`]).
pub(crate) fn unicode(name: &str) -> bool {
    unicode_code(name).is_some()
}

/// How Unicode's fixed encoding `name` spells characters; `None` for another name.
fn unicode_code(name: &str) -> Option<Code> {
    Some(match name {
        "utf16" => Code::Utf16 { little_endian: false },
        "utf16le" => Code::Utf16 { little_endian: true },
        "ucs2" => Code::Ucs2,
        "utf32" => Code::Utf32,
        _ => return None,
    })
}

/// `bytes` as code units of `N` bytes each, read by `read`; the offset of a last, incomplete one.
fn units<'a, const N: usize, U, R: Fn([u8; N]) -> U + 'a>(bytes: &'a [u8], read: R) -> Result<impl Iterator<Item = U> + 'a, usize> {
    if !bytes.len().is_multiple_of(N) {
        return Err(bytes.len() - bytes.len() % N);
    }
    Ok(bytes.chunks_exact(N).map(move |c| read(<[u8; N]>::try_from(c).unwrap_or([0; N]))))
}

impl Encoding {
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
    pub(crate) fn latin1() -> Encoding {
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
        Encoding::from_blue("latin1".into(), &converted, vec![5, 8, 15, 31, 47, 48, 49, 94]).expect("256 bytes")
    }

    #[test]
    fn a_byte_is_carried_only_where_blues_conversion_is_a_round_trip() {
        // Every byte a round trip but 0x98, which blue converts to `?` (as cp1251's), and `?` back to 0x3F.
        let mut converted: Vec<Converted> = (0..=255u8).map(|b| (b, Some(char::from(b).to_string().into_bytes()), Some(vec![b]))).collect();
        assert!(Encoding::from_blue("x".into(), &converted, vec![]).expect("a set").every_byte());
        converted[0x98] = (0x98, Some(b"?".to_vec()), Some(b"?".to_vec()));
        let set = Encoding::from_blue("cp1251".into(), &converted, vec![14]).expect("a set");
        assert!(!set.every_byte());
        assert_eq!(set.decode(&[0x97, 0x99]), Ok("\u{97}\u{99}".to_owned()), "its neighbours are carried");
        assert_eq!(set.decode(b"ab?"), Ok("ab?".to_owned()));
        assert_eq!(set.decode(&[b'a', 0x98, 0x99]), Err(1));
        assert!(latin1().every_byte());
        assert_eq!(latin1().decode(&[0x80, 0x81, 0xE9]), Ok("\u{20AC}\u{0081}é".to_owned()));
    }

    #[test]
    fn unicode_encodings_decode_by_their_standard_and_name_the_first_byte_of_no_character() {
        let set = |name: &str| Encoding::unicode(name, vec![54]).expect(name);
        let text = "aé€😀";
        let be16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let le16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be32: Vec<u8> = text.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect();
        assert_eq!(set("utf16").decode(&be16).as_deref(), Ok(text));
        assert_eq!(set("utf16le").decode(&le16).as_deref(), Ok(text));
        assert_eq!(set("utf32").decode(&be32).as_deref(), Ok(text));
        assert_eq!(set("ucs2").decode(&be16[..6]).as_deref(), Ok("aé€"));
        // Bytes 0 and 0x20 inside other characters: 'A' is 00 41, U+2020 is 20 20.
        assert_eq!(set("utf16").decode(&[0x00, 0x41, 0x20, 0x20]).as_deref(), Ok("A\u{2020}"));
        assert_eq!(set("utf16").decode(&[0, 0]).as_deref(), Ok("\0"), "U+0000 decodes; the converter refuses it");
        // No character: an unpaired surrogate (after a character of two units), ucs2's half of a
        // pair, a code point beyond U+10FFFF, a last unit cut short.
        assert_eq!(set("utf16").decode(&[0xD8, 0x3D, 0xDE, 0x00, 0xD8, 0x3D, 0x00, 0x41]), Err(4));
        assert_eq!(set("utf16le").decode(&[0x41, 0x00, 0x00, 0xDC]), Err(2));
        assert_eq!(set("ucs2").decode(&be16[6..]), Err(0));
        assert_eq!(set("utf32").decode(&[0, 0, 0, 0x41, 0, 0x11, 0, 0]), Err(4));
        assert_eq!(set("utf32").decode(&[0, 0, 0, 0x41, 0, 0]), Err(4));
        assert!(!set("utf16").every_byte() && !set("utf16").single_byte() && latin1().single_byte());
        assert!(Encoding::unicode("sjis", vec![]).is_none() && Encoding::unicode("utf8mb4", vec![]).is_none());
    }

    #[test]
    fn a_conversion_that_is_not_one_character_per_byte_is_no_single_byte_set() {
        let mut converted: Vec<Converted> = (0..=255u8).map(|b| (b, Some(vec![b & 0x7F]), Some(vec![b]))).collect();
        assert!(Encoding::from_blue("x".into(), &converted[..255], vec![]).is_none(), "255 bytes");
        converted[0x41] = (0x41, Some(b"AB".to_vec()), Some(vec![0x41]));
        assert!(Encoding::from_blue("x".into(), &converted, vec![]).is_none(), "two characters");
        converted[0x41] = (0x41, Some(vec![0xC3]), Some(vec![0x41]));
        assert!(Encoding::from_blue("x".into(), &converted, vec![]).is_none(), "not UTF-8");
        // A byte blue has no character for (NULL) is one the set does not carry.
        converted[0x41] = (0x41, None, None);
        let set = Encoding::from_blue("x".into(), &converted, vec![]).expect("a set");
        assert_eq!(set.decode(b"B"), Ok("B".to_owned()));
        assert_eq!(set.decode(b"A"), Err(0));
        assert!(Encoding::plain_name("cp1251") && !Encoding::plain_name("x'; DROP") && !Encoding::plain_name(""));
    }
}
