//! TABLE_MAP_EVENT (0x13; MySQL internals "TABLE_MAP_EVENT", libbinlogevents `Table_map_event` with its
//! optional metadata, WL#4618): binds a table id to a table's name and column types before the rows events
//! that use it. With `binlog_row_metadata=FULL` it also carries column names, signedness, character sets,
//! ENUM/SET strings, geometry types, the primary key and column visibility.

use super::column::{ColumnMeta, FieldType};
use super::reader::{utf8, Reader};
use super::BinlogError;

/// Optional metadata field types (`Table_map_event::Optional_metadata_field_type`).
pub mod optional_metadata {
    pub const SIGNEDNESS: u8 = 1;
    pub const DEFAULT_CHARSET: u8 = 2;
    pub const COLUMN_CHARSET: u8 = 3;
    pub const COLUMN_NAME: u8 = 4;
    pub const SET_STR_VALUE: u8 = 5;
    pub const ENUM_STR_VALUE: u8 = 6;
    pub const GEOMETRY_TYPE: u8 = 7;
    pub const SIMPLE_PRIMARY_KEY: u8 = 8;
    pub const PRIMARY_KEY_WITH_PREFIX: u8 = 9;
    pub const ENUM_AND_SET_DEFAULT_CHARSET: u8 = 10;
    pub const ENUM_AND_SET_COLUMN_CHARSET: u8 = 11;
    pub const COLUMN_VISIBILITY: u8 = 12;
}

/// One column as the table map describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    /// The type as written in the column-type array (ENUM and SET appear as [`FieldType::String`]; see
    /// [`TableColumn::real_type`]).
    pub field_type: FieldType,
    pub meta: ColumnMeta,
    pub nullable: bool,
    /// From COLUMN_NAME.
    pub name: Option<String>,
    /// From SIGNEDNESS; `false` (signed) when the table map has none.
    pub unsigned: bool,
    /// Collation id, from DEFAULT_CHARSET/COLUMN_CHARSET (character columns) or the ENUM_AND_SET variants.
    pub collation: Option<u64>,
    /// From ENUM_STR_VALUE / SET_STR_VALUE: the member strings, in declaration order.
    pub members: Option<Vec<Vec<u8>>>,
    /// From GEOMETRY_TYPE (`Field::geometry_type`: 0 GEOMETRY, 1 POINT, 2 LINESTRING, 3 POLYGON, ...).
    pub geometry_type: Option<u64>,
    /// From COLUMN_VISIBILITY (MySQL 8.0.23+).
    pub visible: Option<bool>,
}

impl TableColumn {
    /// The column's real type: ENUM and SET instead of the STRING the type array says.
    pub fn real_type(&self) -> FieldType {
        match self.meta {
            ColumnMeta::Enum { .. } => FieldType::Enum,
            ColumnMeta::Set { .. } => FieldType::Set,
            _ => self.field_type,
        }
    }

    /// Columns whose values carry a character set (libbinlogevents `is_character_type`): CHAR, VARCHAR,
    /// BLOB/TEXT — binary strings included (collation 63), ENUM/SET excluded. MariaDB also lists GEOMETRY
    /// (a BLOB underneath, collation 63: checked on a 10.11 binlog), MySQL does not; MariaDB's compressed
    /// VARCHAR and BLOB carry their charset like the plain ones (checked on an 11.8 binlog), and MySQL 9's
    /// VECTOR is listed too.
    fn is_character(&self, mariadb: bool) -> bool {
        matches!(
            self.real_type().uncompressed(),
            FieldType::String | FieldType::VarString | FieldType::VarChar | FieldType::Blob | FieldType::TinyBlob | FieldType::MediumBlob | FieldType::LongBlob
        ) || (mariadb && self.real_type() == FieldType::Geometry)
            // MySQL 9 lists VECTOR (binary, collation 63; checked on a 9.7 binlog), which only MySQL writes.
            || self.real_type() == FieldType::Vector
    }

    fn is_enum_or_set(&self) -> bool {
        matches!(self.real_type(), FieldType::Enum | FieldType::Set)
    }
}

/// table_id (6 bytes; 4 with a 6-byte post-header), flags u16; schema (u8 length, bytes, NUL), table (u8
/// length, bytes, NUL), column count (length-encoded), column types, metadata block (length-encoded),
/// null bitmap, optional metadata TLVs (type u8, length-encoded length, value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub flags: u16,
    pub schema: String,
    pub table: String,
    pub columns: Vec<TableColumn>,
    /// Indexes of the primary key's columns with their prefix length (0 = whole column), from
    /// SIMPLE_PRIMARY_KEY or PRIMARY_KEY_WITH_PREFIX.
    pub primary_key: Option<Vec<(usize, u64)>>,
    /// Optional metadata field types that were present but not understood (skipped by their length).
    pub unknown_metadata: Vec<u8>,
    /// A column type code turnout does not know. Without its metadata size the rest of the map
    /// cannot be split, so `columns` is empty: the map is kept so that rows of a table turnout
    /// does not replicate pass by, and a replicated table's are refused naming the type.
    pub unknown_type: Option<u8>,
}

impl TableMap {
    /// `mariadb`: the server is MariaDB, which lists GEOMETRY among the character columns. Both give
    /// YEAR a bit of the SIGNEDNESS bitmap (checked against real MariaDB 10.11 and MySQL 9.7 binlogs).
    pub(crate) fn parse(r: &mut Reader<'_>, post_header_len: usize, mariadb: bool) -> Result<Self, BinlogError> {
        let (table_id, flags) = read_table_id_and_flags(r, post_header_len)?;
        let schema = name(r, "schema name")?;
        let table = name(r, "table name")?;
        let n = r.lenenc_count("column count", 1)?;
        let types = r.take(n, "column types")?;
        let meta_len = r.lenenc_count("metadata length", 1)?;
        let mut meta_r = r.sub(meta_len, "column metadata")?;
        let mut columns = Vec::with_capacity(n);
        for &code in types {
            if FieldType::from_code(code).is_none() {
                // The metadata and optional metadata are length-delimited: the event ends here.
                r.rest();
                return Ok(TableMap {
                    table_id,
                    flags,
                    schema,
                    table,
                    columns: Vec::new(),
                    primary_key: None,
                    unknown_metadata: Vec::new(),
                    unknown_type: Some(code),
                });
            }
            let meta = ColumnMeta::parse(&mut meta_r, code)?;
            let field_type = FieldType::from_code(code).ok_or_else(|| r.error(format!("unknown column type {code}")))?;
            columns.push(TableColumn {
                field_type,
                meta,
                nullable: false,
                name: None,
                unsigned: false,
                collation: None,
                members: None,
                geometry_type: None,
                visible: None,
            });
        }
        meta_r.finish("the column metadata")?;
        let nulls = r.take(n.div_ceil(8), "null bitmap")?;
        for (i, c) in columns.iter_mut().enumerate() {
            c.nullable = bit_lsb(nulls, i);
        }
        let mut map = TableMap { table_id, flags, schema, table, columns, primary_key: None, unknown_metadata: Vec::new(), unknown_type: None };
        while !r.is_empty() {
            let kind = r.u8("optional metadata type")?;
            let len = r.lenenc_count("optional metadata length", 1)?;
            let mut field = r.sub(len, "optional metadata")?;
            map.apply_optional(kind, &mut field, mariadb)?;
        }
        Ok(map)
    }

    /// A column's name, or `@N` (1-based, as mysqlbinlog prints it) when the table map carries none.
    pub fn column_name(&self, index: usize) -> String {
        match self.columns.get(index).and_then(|c| c.name.as_deref()) {
            Some(name) => name.to_owned(),
            None => format!("@{}", index + 1),
        }
    }

    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn apply_optional(&mut self, kind: u8, r: &mut Reader<'_>, mariadb: bool) -> Result<(), BinlogError> {
        use optional_metadata::*;
        match kind {
            SIGNEDNESS => {
                let numeric: Vec<usize> = self.indexes(|c| c.real_type().is_numeric() || c.real_type() == FieldType::Year);
                let bits = r.take(numeric.len().div_ceil(8), "signedness bitmap")?;
                for (k, &i) in numeric.iter().enumerate() {
                    if let Some(c) = self.columns.get_mut(i) {
                        c.unsigned = bit_msb(bits, k);
                    }
                }
            }
            DEFAULT_CHARSET => self.default_charset(r, |c| c.is_character(mariadb))?,
            ENUM_AND_SET_DEFAULT_CHARSET => self.default_charset(r, TableColumn::is_enum_or_set)?,
            COLUMN_CHARSET => self.column_charset(r, |c| c.is_character(mariadb))?,
            ENUM_AND_SET_COLUMN_CHARSET => self.column_charset(r, TableColumn::is_enum_or_set)?,
            COLUMN_NAME => {
                for c in &mut self.columns {
                    let at = r.offset();
                    let bytes = r.lenenc_bytes("column name")?;
                    c.name = Some(utf8(bytes).map_err(|e| r.error_at(at, format!("column name is not UTF-8: {e}")))?);
                }
            }
            SET_STR_VALUE => self.members(r, FieldType::Set)?,
            ENUM_STR_VALUE => self.members(r, FieldType::Enum)?,
            GEOMETRY_TYPE => {
                for i in self.indexes(|c| c.real_type() == FieldType::Geometry) {
                    let g = r.lenenc("geometry type")?;
                    if let Some(c) = self.columns.get_mut(i) {
                        c.geometry_type = Some(g);
                    }
                }
            }
            SIMPLE_PRIMARY_KEY | PRIMARY_KEY_WITH_PREFIX => {
                let mut key = Vec::new();
                while !r.is_empty() {
                    let at = r.offset();
                    let index = r.lenenc("primary key column")?;
                    let index = usize::try_from(index)
                        .ok()
                        .filter(|&i| i < self.columns.len())
                        .ok_or_else(|| r.error_at(at, format!("primary key column {index} of {}", self.columns.len())))?;
                    let prefix = if kind == PRIMARY_KEY_WITH_PREFIX { r.lenenc("primary key prefix")? } else { 0 };
                    key.push((index, prefix));
                }
                self.primary_key = Some(key);
            }
            COLUMN_VISIBILITY => {
                let bits = r.take(self.columns.len().div_ceil(8), "visibility bitmap")?;
                for (i, c) in self.columns.iter_mut().enumerate() {
                    c.visible = Some(bit_msb(bits, i));
                }
            }
            _ => {
                self.unknown_metadata.push(kind);
                let _skipped = r.rest();
            }
        }
        r.finish("an optional metadata field")
    }

    fn indexes(&self, pick: impl Fn(&TableColumn) -> bool) -> Vec<usize> {
        self.columns.iter().enumerate().filter(|(_, c)| pick(c)).map(|(i, _)| i).collect()
    }

    /// DEFAULT_CHARSET: the default collation, then (column index, collation) pairs for the picked columns
    /// that differ from it; the index counts picked columns only.
    fn default_charset(&mut self, r: &mut Reader<'_>, pick: impl Fn(&TableColumn) -> bool) -> Result<(), BinlogError> {
        let picked = self.indexes(pick);
        let default = r.lenenc("default collation")?;
        let mut collations = vec![default; picked.len()];
        while !r.is_empty() {
            let at = r.offset();
            let k = r.lenenc("charset column index")?;
            let collation = r.lenenc("column collation")?;
            let slot = usize::try_from(k)
                .ok()
                .and_then(|k| collations.get_mut(k))
                .ok_or_else(|| r.error_at(at, format!("charset column index {k} of {} character columns", picked.len())))?;
            *slot = collation;
        }
        for (i, collation) in picked.into_iter().zip(collations) {
            if let Some(c) = self.columns.get_mut(i) {
                c.collation = Some(collation);
            }
        }
        Ok(())
    }

    /// COLUMN_CHARSET: one collation per picked column.
    fn column_charset(&mut self, r: &mut Reader<'_>, pick: impl Fn(&TableColumn) -> bool) -> Result<(), BinlogError> {
        for i in self.indexes(pick) {
            let collation = r.lenenc("column collation")?;
            if let Some(c) = self.columns.get_mut(i) {
                c.collation = Some(collation);
            }
        }
        Ok(())
    }

    /// SET_STR_VALUE / ENUM_STR_VALUE: per column of that type, a count and that many strings.
    fn members(&mut self, r: &mut Reader<'_>, t: FieldType) -> Result<(), BinlogError> {
        for i in self.indexes(|c| c.real_type() == t) {
            let n = r.lenenc_count("member count", 1)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(r.lenenc_bytes("member")?.to_vec());
            }
            if let Some(c) = self.columns.get_mut(i) {
                c.members = Some(members);
            }
        }
        Ok(())
    }
}

/// The table id and flags that start TABLE_MAP and rows events: a 6-byte id with an 8-byte post-header (4
/// bytes with the 6-byte post-header of MySQL 5.1.0–5.1.3), then flags u16.
pub(crate) fn read_table_id_and_flags(r: &mut Reader<'_>, post_header_len: usize) -> Result<(u64, u16), BinlogError> {
    let id_len = if post_header_len == 6 { 4 } else { 6 };
    let table_id = r.uint_le(id_len, "table id")?;
    let flags = r.u16("flags")?;
    Ok((table_id, flags))
}

fn name(r: &mut Reader<'_>, what: &str) -> Result<String, BinlogError> {
    let len = r.u8(what)?;
    let s = r.utf8(usize::from(len), what)?;
    let at = r.offset();
    if r.u8(what)? != 0 {
        return Err(r.error_at(at, format!("{what} is not NUL-terminated")));
    }
    Ok(s)
}

/// Bit `i` of a bitmap stored least-significant bit first (null bitmaps, columns-present bitmaps).
pub(crate) fn bit_lsb(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Bit `i` of a bitmap stored most-significant bit first (optional metadata bitmaps).
fn bit_msb(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
        out.push(u8::try_from(s.len()).unwrap_or(0));
        out.extend_from_slice(s);
    }

    /// A table map of `db.t (id INT UNSIGNED NOT NULL, name VARCHAR(20) utf8mb4, price DECIMAL(10,2),
    /// size ENUM('s','m'), g POINT, j JSON)` with full optional metadata as MySQL 8 writes it.
    pub(crate) fn table_map_body() -> Vec<u8> {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        b.extend_from_slice(&[2, b'd', b'b', 0, 1, b't', 0]);
        b.push(6);
        b.extend_from_slice(&[3, 15, 246, 254, 255, 245]);
        let meta = [80, 0, 10, 2, 0xf7, 1, 4, 4];
        b.push(8);
        b.extend_from_slice(&meta);
        b.push(0b0011_1110);
        // SIGNEDNESS: numeric columns id, price -> id unsigned.
        b.extend_from_slice(&[optional_metadata::SIGNEDNESS, 1, 0b1000_0000]);
        // DEFAULT_CHARSET 255 (utf8mb4_0900_ai_ci), no exceptions.
        b.extend_from_slice(&[optional_metadata::DEFAULT_CHARSET, 3, 0xfc, 0xff, 0x00]);
        let mut names = Vec::new();
        for n in ["id", "name", "price", "size", "g", "j"] {
            lenenc_str(&mut names, n.as_bytes());
        }
        b.push(optional_metadata::COLUMN_NAME);
        b.push(u8::try_from(names.len()).unwrap_or(0));
        b.extend_from_slice(&names);
        b.extend_from_slice(&[optional_metadata::ENUM_STR_VALUE, 5, 2, 1, b's', 1, b'm']);
        b.extend_from_slice(&[optional_metadata::GEOMETRY_TYPE, 1, 1]);
        b.extend_from_slice(&[optional_metadata::SIMPLE_PRIMARY_KEY, 1, 0]);
        b.extend_from_slice(&[optional_metadata::ENUM_AND_SET_DEFAULT_CHARSET, 1, 8]);
        b.extend_from_slice(&[optional_metadata::COLUMN_VISIBILITY, 1, 0b1111_1100]);
        // An unknown field type, skipped by its length.
        b.extend_from_slice(&[99, 2, 0xab, 0xcd]);
        b
    }

    #[test]
    fn column_types_metadata_and_optional_metadata_are_decoded() {
        let body = table_map_body();
        let map = TableMap::parse(&mut Reader::new(&body, 19, 0x13), 8, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((map.table_id, map.flags, map.qualified_name()), (42, 1, "db.t".to_owned()));
        let names: Vec<_> = (0..map.columns.len()).map(|i| map.column_name(i)).collect();
        assert_eq!(names, ["id", "name", "price", "size", "g", "j"]);
        let c = &map.columns;
        assert!(c[0].unsigned && !c[2].unsigned && !c[0].nullable && c[1].nullable);
        assert_eq!(c[1].meta, ColumnMeta::VarChar { max_length: 80 });
        assert_eq!(c[1].collation, Some(255));
        assert_eq!(c[3].real_type(), FieldType::Enum);
        assert_eq!(c[3].members, Some(vec![b"s".to_vec(), b"m".to_vec()]));
        assert_eq!(c[3].collation, Some(8));
        assert_eq!(c[4].geometry_type, Some(1));
        assert_eq!(c[5].meta, ColumnMeta::Blob { length_bytes: 4 });
        assert_eq!(map.primary_key, Some(vec![(0, 0)]));
        assert!(c.iter().all(|c| c.visible == Some(true)));
        assert_eq!(map.unknown_metadata, vec![99]);
    }

    /// The body of a TABLE_MAP written by MariaDB 10.11 (binlog_row_metadata=FULL) for `d.t (id INT
    /// PRIMARY KEY, g POINT, c VARCHAR(10) latin1, e ENUM('a','b') latin1, j JSON, v VARCHAR(5))`: its
    /// COLUMN_CHARSET has four entries, the POINT column's 63 first.
    const MARIADB_TABLE_MAP_WITH_GEOMETRY: &[u8] = &[
        0x12, 0, 0, 0, 0, 0, 0x01, 0, 0x01, b'd', 0, 0x01, b't', 0, 0x06, 0x03, 0xff, 0x0f, 0xfe, 0xfc, 0x0f, 0x08, 0x04, 0x0a, 0x00, 0xf7, 0x01, 0x04, 0x14,
        0x00, 0x3e, 0x01, 0x01, 0x00, 0x03, 0x04, 0x3f, 0x08, 0x2e, 0x2d, 0x07, 0x01, 0x01, 0x04, 0x0d, 0x02, b'i', b'd', 0x01, b'g', 0x01, b'c', 0x01, b'e',
        0x01, b'j', 0x01, b'v', 0x0a, 0x01, 0x08, 0x06, 0x05, 0x02, 0x01, b'a', 0x01, b'b', 0x08, 0x01, 0x00,
    ];

    #[test]
    fn mariadb_lists_geometry_columns_among_the_character_columns() {
        let body = MARIADB_TABLE_MAP_WITH_GEOMETRY;
        let map = TableMap::parse(&mut Reader::new(body, 19, 0x13), 8, true).unwrap_or_else(|e| panic!("{e}"));
        let collations: Vec<_> = map.columns.iter().map(|c| c.collation).collect();
        assert_eq!(collations, [None, Some(63), Some(8), Some(8), Some(46), Some(45)]);
        assert_eq!(map.columns[1].geometry_type, Some(1));
        // Read as MySQL would write it, the same bytes do not add up: refused, never shifted.
        assert!(TableMap::parse(&mut Reader::new(body, 19, 0x13), 8, false).is_err());
    }

    #[test]
    fn a_table_map_without_optional_metadata_leaves_names_absent_and_integers_signed() {
        let body = table_map_body();
        // Cut right after the null bitmap.
        let end = 8 + 7 + 1 + 6 + 1 + 8 + 1;
        let map = TableMap::parse(&mut Reader::new(&body[..end], 19, 0x13), 8, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map.column_name(0), "@1");
        assert!(!map.columns[0].unsigned);
    }

    #[test]
    fn a_column_type_nobody_knows_keeps_the_map_without_columns() {
        let mut body = table_map_body();
        // The second column (VARCHAR) becomes type 130.
        let at = body.iter().position(|&b| b == 15).unwrap_or_else(|| panic!("no VARCHAR code"));
        body[at] = 130;
        let map = TableMap::parse(&mut Reader::new(&body, 19, 0x13), 8, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((map.schema.as_str(), map.table.as_str(), map.table_id, map.unknown_type), ("db", "t", 0x2a, Some(130)));
        assert!(map.columns.is_empty());
    }

    #[test]
    fn a_hostile_column_count_is_an_error() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0, 1, b'd', 0, 1, b't', 0];
        b.extend_from_slice(&[0xfe, 0, 0, 0, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[3; 20]);
        assert!(TableMap::parse(&mut Reader::new(&b, 19, 0x13), 8, false).is_err());
    }

    #[test]
    fn a_default_charset_index_past_the_character_columns_is_an_error() {
        let mut body = table_map_body();
        let field = [optional_metadata::DEFAULT_CHARSET, 3, 0xfc, 0xff, 0x00];
        let at = body.windows(5).position(|w| w == field).unwrap_or(0);
        body.splice(at..at + 5, [optional_metadata::DEFAULT_CHARSET, 3, 8, 5, 9]);
        assert!(TableMap::parse(&mut Reader::new(&body, 19, 0x13), 8, false).is_err());
    }
}
