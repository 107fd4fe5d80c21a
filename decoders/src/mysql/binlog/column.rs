//! Column types as a table map writes them (MySQL `enum_field_types`) and each type's table-map metadata
//! (MySQL internals "TABLE_MAP_EVENT", libbinlogevents `Table_map_event` "metadata"; each field's
//! `save_field_metadata`), decoded into [`ColumnMeta`].

use super::reader::Reader;
use super::BinlogError;

/// MySQL `enum_field_types`, as far as they can appear in a table map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Old DECIMAL (before MySQL 5.0.3): no binary row format.
    Decimal,
    Tiny,
    Short,
    Long,
    Float,
    Double,
    Null,
    Timestamp,
    LongLong,
    Int24,
    Date,
    Time,
    DateTime,
    Year,
    NewDate,
    VarChar,
    Bit,
    Timestamp2,
    DateTime2,
    Time2,
    /// MySQL 8 multi-valued index helper column.
    TypedArray,
    /// MariaDB `VARCHAR … COMPRESSED`: a VARCHAR whose value is stored compressed ([`super::compressed`]).
    VarCharCompressed,
    /// MariaDB `BLOB`/`TEXT … COMPRESSED`: a BLOB whose value is stored compressed.
    BlobCompressed,
    /// MySQL 9 VECTOR.
    Vector,
    Json,
    NewDecimal,
    Enum,
    Set,
    TinyBlob,
    MediumBlob,
    LongBlob,
    Blob,
    VarString,
    String,
    Geometry,
}

impl FieldType {
    /// The type for a type code, `None` for codes no server writes.
    pub fn from_code(code: u8) -> Option<Self> {
        use FieldType::*;
        Some(match code {
            0 => Decimal,
            1 => Tiny,
            2 => Short,
            3 => Long,
            4 => Float,
            5 => Double,
            6 => Null,
            7 => Timestamp,
            8 => LongLong,
            9 => Int24,
            10 => Date,
            11 => Time,
            12 => DateTime,
            13 => Year,
            14 => NewDate,
            15 => VarChar,
            16 => Bit,
            17 => Timestamp2,
            18 => DateTime2,
            19 => Time2,
            20 => TypedArray,
            140 => BlobCompressed,
            141 => VarCharCompressed,
            242 => Vector,
            245 => Json,
            246 => NewDecimal,
            247 => Enum,
            248 => Set,
            249 => TinyBlob,
            250 => MediumBlob,
            251 => LongBlob,
            252 => Blob,
            253 => VarString,
            254 => String,
            255 => Geometry,
            _ => return None,
        })
    }

    /// The type code.
    pub fn code(self) -> u8 {
        use FieldType::*;
        match self {
            Decimal => 0,
            Tiny => 1,
            Short => 2,
            Long => 3,
            Float => 4,
            Double => 5,
            Null => 6,
            Timestamp => 7,
            LongLong => 8,
            Int24 => 9,
            Date => 10,
            Time => 11,
            DateTime => 12,
            Year => 13,
            NewDate => 14,
            VarChar => 15,
            Bit => 16,
            Timestamp2 => 17,
            DateTime2 => 18,
            Time2 => 19,
            TypedArray => 20,
            BlobCompressed => 140,
            VarCharCompressed => 141,
            Vector => 242,
            Json => 245,
            NewDecimal => 246,
            Enum => 247,
            Set => 248,
            TinyBlob => 249,
            MediumBlob => 250,
            LongBlob => 251,
            Blob => 252,
            VarString => 253,
            String => 254,
            Geometry => 255,
        }
    }

    /// The type a value has once read: a compressed column's value is decompressed into a plain
    /// VARCHAR or BLOB value, which is what green's column (compressed or not) takes.
    pub fn uncompressed(self) -> Self {
        match self {
            FieldType::VarCharCompressed => FieldType::VarChar,
            FieldType::BlobCompressed => FieldType::Blob,
            other => other,
        }
    }

    /// Numeric types (libbinlogevents `is_numeric_type`). The SIGNEDNESS optional metadata also gives
    /// YEAR a bit, on MariaDB and MySQL alike (checked on MariaDB 10.11 and MySQL 9.7 binlogs).
    pub fn is_numeric(self) -> bool {
        use FieldType::*;
        matches!(self, Tiny | Short | Int24 | Long | LongLong | NewDecimal | Float | Double | Decimal)
    }
}

/// A column type's table-map metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnMeta {
    /// Types without metadata (integers, YEAR, DATE, old temporal types, NULL).
    None,
    /// FLOAT/DOUBLE: the value's size in bytes (4 or 8).
    Float {
        pack_length: u8,
    },
    /// VARCHAR/VAR_STRING: the maximum length in bytes; values have a 1-byte length below 256, else 2.
    VarChar {
        max_length: u16,
    },
    /// BIT(n): n = `bytes * 8 + bits`.
    Bit {
        bits: u8,
        bytes: u8,
    },
    NewDecimal {
        precision: u8,
        scale: u8,
    },
    /// BLOB/TEXT/GEOMETRY/JSON/VECTOR: bytes of the value's length prefix (1–4).
    Blob {
        length_bytes: u8,
    },
    /// TIMESTAMP2/DATETIME2/TIME2: fractional-second precision (0–6).
    Fsp(u8),
    /// STRING (CHAR/BINARY): the maximum length in bytes; values have a 1-byte length below 256, else 2.
    String {
        max_length: u16,
    },
    /// ENUM (written as STRING with real type ENUM): the value's size, 1 or 2.
    Enum {
        pack_length: u8,
    },
    /// SET (written as STRING with real type SET): the value's size, 1–8.
    Set {
        pack_length: u8,
    },
    /// MySQL 8 TYPED_ARRAY: the element type and its own metadata.
    TypedArray {
        element_type: u8,
        element: Box<ColumnMeta>,
    },
}

impl ColumnMeta {
    /// Reads the metadata of one column of type `code` from the table map's metadata block.
    pub(crate) fn parse(r: &mut Reader<'_>, code: u8) -> Result<Self, BinlogError> {
        let at = r.offset();
        let Some(t) = FieldType::from_code(code) else {
            return Err(r.error_at(at, format!("unknown column type {code}: its metadata size is not known")));
        };
        use FieldType::*;
        Ok(match t {
            Float | Double => ColumnMeta::Float { pack_length: r.u8("float pack length")? },
            VarChar | VarString | VarCharCompressed => ColumnMeta::VarChar { max_length: r.u16("varchar max length")? },
            Bit => {
                let bits = r.u8("bit metadata")?;
                let bytes = r.u8("bit metadata")?;
                if bits > 7 {
                    return Err(r.error_at(at, format!("BIT metadata says {bits} leftover bits")));
                }
                ColumnMeta::Bit { bits, bytes }
            }
            NewDecimal => {
                let precision = r.u8("decimal precision")?;
                let scale = r.u8("decimal scale")?;
                ColumnMeta::NewDecimal { precision, scale }
            }
            Blob | TinyBlob | MediumBlob | LongBlob | Geometry | Json | Vector | BlobCompressed => ColumnMeta::Blob { length_bytes: r.u8("blob length size")? },
            Timestamp2 | DateTime2 | Time2 => ColumnMeta::Fsp(r.u8("fractional seconds precision")?),
            String | Enum | Set => {
                let b0 = r.u8("string metadata")?;
                let b1 = r.u8("string metadata")?;
                string_meta(b0, b1)
            }
            TypedArray => {
                let element_type = r.u8("typed array element type")?;
                if element_type == TypedArray.code() {
                    return Err(r.error_at(at, "a typed array of typed arrays"));
                }
                let element = Box::new(ColumnMeta::parse(r, element_type)?);
                ColumnMeta::TypedArray { element_type, element }
            }
            Decimal | Tiny | Short | Long | Null | Timestamp | LongLong | Int24 | Date | Time | DateTime | Year | NewDate => ColumnMeta::None,
        })
    }
}

/// STRING metadata: byte 0 is the real type (ENUM, SET, STRING) with, for long CHARs, two bits of the
/// maximum length folded in (complemented) at 0x30; byte 1 is the low byte of the length, or the pack length
/// of an ENUM/SET.
fn string_meta(b0: u8, b1: u8) -> ColumnMeta {
    let (real_type, max_length) = if b0 & 0x30 != 0x30 { (b0 | 0x30, (u16::from((b0 & 0x30) ^ 0x30) << 4) | u16::from(b1)) } else { (b0, u16::from(b1)) };
    match real_type {
        247 => ColumnMeta::Enum { pack_length: b1 },
        248 => ColumnMeta::Set { pack_length: b1 },
        _ => ColumnMeta::String { max_length },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code: u8, bytes: &[u8]) -> Result<ColumnMeta, BinlogError> {
        let mut r = Reader::new(bytes, 0, 0x13);
        let m = ColumnMeta::parse(&mut r, code)?;
        r.finish("metadata")?;
        Ok(m)
    }

    #[test]
    fn every_type_code_round_trips() {
        for code in 0..=255u8 {
            if let Some(t) = FieldType::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
    }

    #[test]
    fn long_char_lengths_are_folded_into_the_real_type_byte() {
        // CHAR(255) in utf8mb4: 1020 bytes = 0x3FC; 0x300 is stored complemented in bits 4-5 of byte 0.
        assert_eq!(meta(254, &[0xce, 0xfc]).ok(), Some(ColumnMeta::String { max_length: 1020 }));
        assert_eq!(meta(254, &[0xfe, 0x0a]).ok(), Some(ColumnMeta::String { max_length: 10 }));
        assert_eq!(meta(254, &[0xf7, 0x02]).ok(), Some(ColumnMeta::Enum { pack_length: 2 }));
        assert_eq!(meta(254, &[0xf8, 0x08]).ok(), Some(ColumnMeta::Set { pack_length: 8 }));
    }

    #[test]
    fn metadata_sizes_follow_the_type() {
        assert_eq!(meta(15, &[0x2c, 0x01]).ok(), Some(ColumnMeta::VarChar { max_length: 300 }));
        assert_eq!(meta(246, &[65, 30]).ok(), Some(ColumnMeta::NewDecimal { precision: 65, scale: 30 }));
        assert_eq!(meta(16, &[1, 8]).ok(), Some(ColumnMeta::Bit { bits: 1, bytes: 8 }));
        assert_eq!(meta(252, &[4]).ok(), Some(ColumnMeta::Blob { length_bytes: 4 }));
        assert_eq!(meta(18, &[6]).ok(), Some(ColumnMeta::Fsp(6)));
        assert_eq!(meta(3, &[]).ok(), Some(ColumnMeta::None));
        assert_eq!(meta(20, &[18, 3]).ok(), Some(ColumnMeta::TypedArray { element_type: 18, element: Box::new(ColumnMeta::Fsp(3)) }));
        assert!(meta(100, &[]).is_err());
        assert!(meta(246, &[65]).is_err());
    }
}
