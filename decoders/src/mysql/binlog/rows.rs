//! Rows events (MySQL internals "ROWS_EVENT", libbinlogevents `Rows_event`): WRITE/UPDATE/DELETE_ROWS
//! version 1 (0x17–0x19, what MariaDB writes) and version 2 (0x1E–0x20, MySQL 5.6+, with an extra-data block
//! after the flags), and [`decode_rows`], which turns their row images into values with the table map
//! that preceded them.
//!
//! A row image is a null bitmap over the columns *present* in the image, then the values of the present,
//! non-NULL columns. With `binlog_row_image=MINIMAL` or `NOBLOB` some columns are absent; a [`RowImage`]
//! says so explicitly rather than inventing values.
//!
//! MySQL's PARTIAL_UPDATE_ROWS (0x27, `binlog_row_value_options = PARTIAL_JSON`) is an UPDATE version 2
//! whose after images start with value options (length-encoded) and, when partial JSON is on, a bitmap
//! with one bit per JSON column saying which hold a diff instead of a document. [`decode_rows`] applies
//! each diff to the before image's document ([`super::json_diff`]), so the after image it returns holds
//! whole documents like any other update; a diff without a full before image is refused.

use super::column::FieldType;
use super::event_type;
use super::json_diff;
use super::reader::Reader;
use super::table_map::{bit_lsb, read_table_id_and_flags, TableMap};
use super::values::{decode_value, BinlogValue};
use super::BinlogError;

/// Rows event flags.
pub mod rows_flags {
    /// The last rows event of the statement: table maps may be dropped after it.
    pub const STMT_END: u16 = 1;
    pub const NO_FOREIGN_KEY_CHECKS: u16 = 2;
    pub const RELAXED_UNIQUE_CHECKS: u16 = 4;
    /// Every column is in the image.
    pub const COMPLETE_ROWS: u16 = 8;
    /// MySQL 9 with foreign keys enforced by the SQL layer (`innodb_native_foreign_keys = OFF`, the
    /// default): every row a cascade changed is in the binlog too, before the row that caused it.
    pub const USE_SQL_FOREIGN_KEY: u16 = 16;
}

/// What a rows event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsKind {
    Write,
    Update,
    Delete,
}

/// The decoded extra-data block of a version-2 rows event (`Rows_event::Extra_row_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowsExtraData {
    /// The block as written (without its length field).
    pub raw: Vec<u8>,
    /// `NDB` (type 0): format byte and data.
    pub ndb_info: Option<(u8, Vec<u8>)>,
    /// `PART` (type 1): the partition written to.
    pub partition_id: Option<u16>,
    /// `PART` in an UPDATE: the partition the row came from.
    pub source_partition_id: Option<u16>,
}

/// table_id (6 bytes), flags u16, [v2: extra_data_len u16 (counting itself), extra data]; column count
/// (length-encoded), columns-present bitmap, [UPDATE: columns-present bitmap of the after image], rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowsEvent {
    pub kind: RowsKind,
    /// 1 (types 0x17–0x19) or 2 (0x1E–0x20).
    pub version: u8,
    pub table_id: u64,
    pub flags: u16,
    pub extra: RowsExtraData,
    pub column_count: usize,
    /// Columns present in the image (WRITE: the after image; DELETE and UPDATE: the before image), least
    /// significant bit first.
    pub columns_present: Vec<u8>,
    /// UPDATE: columns present in the after image.
    pub update_columns_present: Option<Vec<u8>>,
    /// The row images, undecoded: they need the table map.
    pub rows: Vec<u8>,
    /// Byte offset of `rows` inside the event.
    pub rows_offset: usize,
    /// PARTIAL_UPDATE_ROWS: each after image starts with value options and may hold JSON diffs.
    pub partial_json: bool,
}

impl RowsEvent {
    pub(crate) fn parse(r: &mut Reader<'_>, type_code: u8, post_header_len: usize) -> Result<Self, BinlogError> {
        use event_type::*;
        let (kind, version) = match type_code {
            WRITE_ROWS_V1 => (RowsKind::Write, 1),
            UPDATE_ROWS_V1 => (RowsKind::Update, 1),
            DELETE_ROWS_V1 => (RowsKind::Delete, 1),
            WRITE_ROWS_V2 => (RowsKind::Write, 2),
            UPDATE_ROWS_V2 => (RowsKind::Update, 2),
            DELETE_ROWS_V2 => (RowsKind::Delete, 2),
            PARTIAL_UPDATE_ROWS => (RowsKind::Update, 2),
            other => return Err(r.error(format!("event type 0x{other:02x} is not a rows event"))),
        };
        let mut post = r.sub(post_header_len.clamp(6, 8), "rows post-header")?;
        let (table_id, flags) = read_table_id_and_flags(&mut post, post_header_len)?;
        let mut extra = RowsExtraData::default();
        if version == 2 {
            let at = r.offset();
            let len = r.u16("extra data length")?;
            let len = usize::from(len).checked_sub(2).ok_or_else(|| r.error_at(at, format!("extra data length {len} is less than its own 2 bytes")))?;
            let mut block = r.sub(len, "extra data")?;
            extra = parse_extra(&mut block, kind)?;
        }
        let n = r.lenenc_count("column count", 0)?;
        let bitmap_len = n.div_ceil(8);
        let columns_present = r.take(bitmap_len, "columns-present bitmap")?.to_vec();
        let update_columns_present = if kind == RowsKind::Update { Some(r.take(bitmap_len, "after-image columns-present bitmap")?.to_vec()) } else { None };
        let rows_offset = r.offset();
        let rows = r.rest().to_vec();
        let partial_json = type_code == PARTIAL_UPDATE_ROWS;
        Ok(RowsEvent { kind, version, table_id, flags, extra, column_count: n, columns_present, update_columns_present, rows, rows_offset, partial_json })
    }

    /// The event type code this event was read from.
    pub fn type_code(&self) -> u8 {
        use event_type::*;
        match (self.kind, self.version) {
            (RowsKind::Update, 2) if self.partial_json => PARTIAL_UPDATE_ROWS,
            (RowsKind::Write, 1) => WRITE_ROWS_V1,
            (RowsKind::Update, 1) => UPDATE_ROWS_V1,
            (RowsKind::Delete, 1) => DELETE_ROWS_V1,
            (RowsKind::Write, _) => WRITE_ROWS_V2,
            (RowsKind::Update, _) => UPDATE_ROWS_V2,
            (RowsKind::Delete, _) => DELETE_ROWS_V2,
        }
    }

    /// True when this is the last rows event of its statement.
    pub fn is_statement_end(&self) -> bool {
        self.flags & rows_flags::STMT_END != 0
    }
}

fn parse_extra(r: &mut Reader<'_>, kind: RowsKind) -> Result<RowsExtraData, BinlogError> {
    let mut extra = RowsExtraData { raw: r.clone().rest().to_vec(), ..RowsExtraData::default() };
    while !r.is_empty() {
        let at = r.offset();
        match r.u8("extra data type")? {
            0 => {
                // The length counts the length and format bytes too.
                let len = r.u8("NDB info length")?;
                let data_len = usize::from(len).checked_sub(2).ok_or_else(|| r.error_at(at, format!("NDB info length {len} is less than 2")))?;
                let format = r.u8("NDB info format")?;
                extra.ndb_info = Some((format, r.take(data_len, "NDB info")?.to_vec()));
            }
            1 => {
                extra.partition_id = Some(r.u16("partition id")?);
                if kind == RowsKind::Update {
                    extra.source_partition_id = Some(r.u16("source partition id")?);
                }
            }
            // A type this parser does not know: the rest stays in `raw`.
            _ => {
                let _unknown = r.rest();
            }
        }
    }
    Ok(extra)
}

/// The values of one row image, by column index. Columns absent from the image (partial row images) have
/// no entry: [`RowImage::get`] returns `None` for them, while a present SQL NULL is
/// `Some(&BinlogValue::Null)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RowImage {
    column_count: usize,
    /// Present columns in increasing index order.
    values: Vec<(usize, BinlogValue)>,
}

impl RowImage {
    /// The value of column `index`, `None` when the column is not in this image.
    pub fn get(&self, index: usize) -> Option<&BinlogValue> {
        self.values.binary_search_by_key(&index, |(i, _)| *i).ok().and_then(|k| self.values.get(k)).map(|(_, v)| v)
    }

    /// The table's column count.
    pub fn column_count(&self) -> usize {
        self.column_count
    }

    /// True when every column of the table is in the image (`binlog_row_image=FULL`).
    pub fn is_complete(&self) -> bool {
        self.values.len() == self.column_count
    }

    /// Indexes of the columns missing from this image.
    pub fn absent_columns(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.column_count).filter(|&i| self.get(i).is_none())
    }

    /// The present columns with their values, in column order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &BinlogValue)> {
        self.values.iter().map(|(i, v)| (*i, v))
    }

    /// One slot per table column, `None` for absent columns.
    pub fn into_columns(self) -> Vec<Option<BinlogValue>> {
        let mut out: Vec<Option<BinlogValue>> = (0..self.column_count).map(|_| None).collect();
        for (i, v) in self.values {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(v);
            }
        }
        out
    }
}

/// One row of a rows event.
#[derive(Clone, Debug, PartialEq)]
pub enum RowChange {
    Insert {
        after: RowImage,
    },
    /// An UPDATE row: the before image, then the after image.
    Update {
        before: RowImage,
        after: RowImage,
    },
    Delete {
        before: RowImage,
    },
}

/// Decodes every row of `event` with `table`, the table map the stream bound to the event's table id.
///
/// A rows event whose table id or column count differ from `table` is a [`BinlogError::TableMismatch`];
/// a value that cannot be decoded is a [`BinlogError::BadValue`] naming the column. Never panics, and never
/// allocates more than a small multiple of the event's size.
pub fn decode_rows(event: &RowsEvent, table: &TableMap) -> Result<Vec<RowChange>, BinlogError> {
    if event.table_id != table.table_id || event.column_count != table.columns.len() {
        return Err(BinlogError::TableMismatch {
            table: table.qualified_name(),
            rows_table_id: event.table_id,
            rows_columns: event.column_count,
            map_table_id: table.table_id,
            map_columns: table.columns.len(),
        });
    }
    let present = |bitmap: &[u8]| -> Vec<usize> { (0..event.column_count).filter(|&i| bit_lsb(bitmap, i)).collect() };
    let first = present(&event.columns_present);
    let second = event.update_columns_present.as_deref().map(present).unwrap_or_default();
    let mut r = Reader::new(&event.rows, event.rows_offset, event.type_code());
    let mut out = Vec::new();
    while !r.is_empty() {
        let start = r.offset();
        let change = match event.kind {
            RowsKind::Write => RowChange::Insert { after: image(&mut r, &first, table)? },
            RowsKind::Delete => RowChange::Delete { before: image(&mut r, &first, table)? },
            RowsKind::Update => {
                let before = image(&mut r, &first, table)?;
                let after = if event.partial_json { partial_after_image(&mut r, &second, table, &before)? } else { image(&mut r, &second, table)? };
                RowChange::Update { before, after }
            }
        };
        if r.offset() == start {
            return Err(r.error("a row image without any bytes: no columns are present"));
        }
        out.push(change);
    }
    Ok(out)
}

/// Null bitmap over the present columns, then their non-NULL values.
fn image(r: &mut Reader<'_>, present: &[usize], table: &TableMap) -> Result<RowImage, BinlogError> {
    image_with(r, present, table, |_| false, |_, _| unreachable_diff())
}

fn unreachable_diff() -> Result<BinlogValue, BinlogError> {
    Err(BinlogError::Malformed { event_type: event_type::PARTIAL_UPDATE_ROWS, offset: 0, reason: "a JSON diff outside a partial update".into() })
}

/// The after image of a PARTIAL_UPDATE_ROWS row: value options, the partial-JSON bitmap (one bit per
/// JSON column of the table, in column order), then an image in which a JSON column whose bit is set
/// holds a diff vector (4-byte length, diffs), applied here to the document of `before`.
fn partial_after_image(r: &mut Reader<'_>, present: &[usize], table: &TableMap, before: &RowImage) -> Result<RowImage, BinlogError> {
    let at = r.offset();
    let options = r.lenenc("value options")?;
    if options & !1 != 0 {
        // Only PARTIAL_JSON_UPDATES (1) is defined; another would change what follows.
        return Err(r.error_at(at, format!("unknown row value options 0x{options:x}")));
    }
    let json_columns: Vec<usize> = table.columns.iter().enumerate().filter(|(_, c)| c.field_type == FieldType::Json).map(|(i, _)| i).collect();
    let bits = if options & 1 == 1 { r.take(json_columns.len().div_ceil(8), "partial JSON bitmap")?.to_vec() } else { Vec::new() };
    // Which JSON columns hold a diff. The bits follow the JSON columns of the table; an image missing
    // some column (not binlog_row_image = FULL) could number them otherwise, and has no old document.
    let partial: Vec<usize> = json_columns.iter().enumerate().filter(|(k, _)| bit_lsb(&bits, *k)).map(|(_, &i)| i).collect();
    if !partial.is_empty() && (present.len() != table.columns.len() || !before.is_complete()) {
        return Err(BinlogError::Unsupported {
            event_type: event_type::PARTIAL_UPDATE_ROWS,
            reason: "a JSON diff in a row image that is not full: the old document it applies to is not in the binlog",
            fix: "SET GLOBAL binlog_row_image = FULL (or binlog_row_value_options = '')",
        });
    }
    image_with(
        r,
        present,
        table,
        |i| partial.contains(&i),
        |r, i| {
            let at = r.offset();
            let len = r.u32("JSON diff vector length")?;
            let body = r.take(usize::try_from(len).unwrap_or(usize::MAX), "JSON diff vector")?;
            let old = match before.get(i) {
                Some(BinlogValue::Json(text)) => text,
                other => return Err(r.error_at(at, format!("a JSON diff for a column whose old value is {other:?}, not a document"))),
            };
            json_diff::parse_diffs(body)
                .and_then(|diffs| json_diff::apply(old, &diffs))
                .map(BinlogValue::Json)
                .map_err(|e| r.error_at(at, format!("partial JSON update: {e}")))
        },
    )
}

/// [`image`], with the columns `is_diff` picks decoded by `diff` instead of by their type.
fn image_with(
    r: &mut Reader<'_>,
    present: &[usize],
    table: &TableMap,
    is_diff: impl Fn(usize) -> bool,
    diff: impl Fn(&mut Reader<'_>, usize) -> Result<BinlogValue, BinlogError>,
) -> Result<RowImage, BinlogError> {
    let nulls = r.take(present.len().div_ceil(8), "row null bitmap")?;
    let mut values = Vec::with_capacity(present.len());
    for (k, &i) in present.iter().enumerate() {
        let Some(column) = table.columns.get(i) else { continue };
        let value = if bit_lsb(nulls, k) {
            BinlogValue::Null
        } else {
            let decoded = if is_diff(i) { diff(r, i) } else { decode_value(r, column) };
            decoded.map_err(|e| match e {
                BinlogError::Malformed { offset, reason, .. } => {
                    BinlogError::BadValue { table: table.qualified_name(), column: i, field_type: column.field_type.code(), offset, reason }
                }
                other => other,
            })?
        };
        values.push((i, value));
    }
    Ok(RowImage { column_count: table.columns.len(), values })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::table_map::tests::table_map_body;
    use super::*;

    pub(crate) fn table() -> TableMap {
        let body = table_map_body();
        TableMap::parse(&mut Reader::new(&body, 19, 0x13), 8, false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One row of the test table: id, name, price, size, g (NULL), j (NULL).
    fn row(id: u32, name: &str) -> Vec<u8> {
        let mut b = vec![0b0011_0000];
        b.extend_from_slice(&id.to_le_bytes());
        b.push(u8::try_from(name.len()).unwrap_or(0));
        b.extend_from_slice(name.as_bytes());
        // DECIMAL(10,2) 1.50
        b.extend_from_slice(&[0x80, 0, 0, 1, 50]);
        b.push(2);
        b
    }

    /// A version-2 rows event body of the test table (6 columns) with a partition extra-data block.
    pub(crate) fn rows_body(kind: RowsKind) -> Vec<u8> {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        let extra: &[u8] = if kind == RowsKind::Update { &[1, 3, 0, 4, 0] } else { &[1, 3, 0] };
        b.extend_from_slice(&u16::try_from(extra.len() + 2).unwrap_or(0).to_le_bytes());
        b.extend_from_slice(extra);
        b.push(6);
        b.push(0x3f);
        if kind == RowsKind::Update {
            b.push(0x3f);
            b.extend_from_slice(&row(1, "a"));
            b.extend_from_slice(&row(1, "b"));
        } else {
            b.extend_from_slice(&row(1, "a"));
            b.extend_from_slice(&row(4_000_000_000, "hé"));
        }
        b
    }

    fn parse(kind: RowsKind, body: &[u8]) -> Result<RowsEvent, BinlogError> {
        let code = match kind {
            RowsKind::Write => event_type::WRITE_ROWS_V2,
            RowsKind::Update => event_type::UPDATE_ROWS_V2,
            RowsKind::Delete => event_type::DELETE_ROWS_V2,
        };
        RowsEvent::parse(&mut Reader::new(body, 19, code), code, 10)
    }

    #[test]
    fn a_v2_write_rows_event_with_extra_data_decodes_every_row() {
        let e = parse(RowsKind::Write, &rows_body(RowsKind::Write)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.table_id, e.version, e.extra.partition_id), (42, 2, Some(3)));
        assert!(e.is_statement_end());
        let rows = decode_rows(&e, &table()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 2);
        let RowChange::Insert { after } = &rows[1] else { panic!("{:?}", rows[1]) };
        assert!(after.is_complete());
        assert_eq!(after.get(0), Some(&BinlogValue::UInt(4_000_000_000)));
        assert_eq!(after.get(1), Some(&BinlogValue::Bytes("hé".as_bytes().to_vec())));
        assert_eq!(after.get(2), Some(&BinlogValue::Decimal("1.50".into())));
        assert_eq!(after.get(3), Some(&BinlogValue::Enum(2)));
        assert_eq!(after.get(4), Some(&BinlogValue::Null));
    }

    #[test]
    fn an_update_row_has_a_before_and_an_after_image() {
        let e = parse(RowsKind::Update, &rows_body(RowsKind::Update)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.extra.partition_id, e.extra.source_partition_id), (Some(3), Some(4)));
        let rows = decode_rows(&e, &table()).unwrap_or_else(|e| panic!("{e}"));
        let [RowChange::Update { before, after }] = rows.as_slice() else { panic!("{rows:?}") };
        assert_eq!(before.get(1), Some(&BinlogValue::Bytes(b"a".to_vec())));
        assert_eq!(after.get(1), Some(&BinlogValue::Bytes(b"b".to_vec())));
    }

    #[test]
    fn columns_absent_from_a_minimal_image_are_reported_as_absent() {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        // v1 DELETE with only the id present (binlog_row_image=MINIMAL).
        b.extend_from_slice(&[6, 0b0000_0001, 0b0000_0000]);
        b.extend_from_slice(&7u32.to_le_bytes());
        let e = RowsEvent::parse(&mut Reader::new(&b, 19, 0x19), 0x19, 8).unwrap_or_else(|e| panic!("{e}"));
        let rows = decode_rows(&e, &table()).unwrap_or_else(|e| panic!("{e}"));
        let [RowChange::Delete { before }] = rows.as_slice() else { panic!("{rows:?}") };
        assert_eq!(before.get(0), Some(&BinlogValue::UInt(7)));
        assert_eq!(before.get(1), None);
        assert!(!before.is_complete());
        assert_eq!(before.absent_columns().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let dense = before.clone().into_columns();
        assert_eq!(dense.len(), 6);
        assert!(dense[1].is_none());
    }

    #[test]
    fn a_rows_event_for_another_table_is_a_mismatch() {
        let mut e = parse(RowsKind::Write, &rows_body(RowsKind::Write)).unwrap_or_else(|e| panic!("{e}"));
        e.table_id = 43;
        assert!(matches!(decode_rows(&e, &table()), Err(BinlogError::TableMismatch { .. })));
    }

    #[test]
    fn a_truncated_row_is_a_bad_value_naming_the_column() {
        let mut body = rows_body(RowsKind::Write);
        body.truncate(body.len() - 3);
        let e = parse(RowsKind::Write, &body).unwrap_or_else(|e| panic!("{e}"));
        match decode_rows(&e, &table()) {
            Err(BinlogError::BadValue { column, table, .. }) => assert_eq!((column, table.as_str()), (2, "db.t")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_with_no_present_columns_cannot_loop_forever() {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        b.extend_from_slice(&[6, 0, 0xaa]);
        let e = RowsEvent::parse(&mut Reader::new(&b, 19, 0x17), 0x17, 8).unwrap_or_else(|e| panic!("{e}"));
        assert!(decode_rows(&e, &table()).is_err());
    }

    /// A row of the test table with `j` a document (`doc`, binary JSON) or a diff vector (`diff`).
    fn json_row(j: &[u8]) -> Vec<u8> {
        let mut b = vec![0b0001_0000];
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[1, b'a', 0x80, 0, 0, 1, 50, 2]);
        b.extend_from_slice(&u32::try_from(j.len()).unwrap_or(0).to_le_bytes());
        b.extend_from_slice(j);
        b
    }

    /// A PARTIAL_UPDATE_ROWS body of the test table: every column in both images, the after image's
    /// `j` a diff vector when `bits` says so.
    fn partial_body(before: &[u8], options: u8, bits: Option<u8>, after_j: &[u8], after_present: u8) -> Vec<u8> {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0, 2, 0, 6, 0x3f, after_present];
        b.extend_from_slice(&json_row(before));
        b.push(options);
        b.extend(bits);
        b.extend_from_slice(&json_row(after_j));
        b
    }

    fn decode_partial(body: &[u8]) -> Result<Vec<RowChange>, BinlogError> {
        let code = event_type::PARTIAL_UPDATE_ROWS;
        let e = RowsEvent::parse(&mut Reader::new(body, 19, code), code, 10)?;
        assert_eq!((e.kind, e.type_code()), (RowsKind::Update, code));
        decode_rows(&e, &table())
    }

    #[test]
    fn a_partial_json_update_applies_its_diff_to_the_before_image() {
        use super::super::json::tests::J;
        use super::super::json_diff::tests::vector;
        let doc = J::Object(vec![("a".into(), J::I16(1)), ("bb".into(), J::Array(vec![J::I16(1), J::I16(2)], false))], false).encode();
        let diffs = vector(&[(0, "$.bb[0]", Some(J::Str("x".into()))), (1, "$.c", Some(J::Bool(true)))]);
        let rows = decode_partial(&partial_body(&doc, 1, Some(1), &diffs, 0x3f)).unwrap_or_else(|e| panic!("{e}"));
        let [RowChange::Update { before, after }] = rows.as_slice() else { panic!("{rows:?}") };
        assert_eq!(before.get(5), Some(&BinlogValue::Json(r#"{"a": 1, "bb": [1, 2]}"#.into())));
        assert_eq!(after.get(5), Some(&BinlogValue::Json(r#"{"a": 1, "c": true, "bb": ["x", 2]}"#.into())));
        assert_eq!(after.get(1), Some(&BinlogValue::Bytes(b"a".to_vec())));

        // A JSON column whose bit is clear holds a whole document; so do all with the options off.
        let other = J::Array(vec![J::Null], false).encode();
        for (options, bits) in [(1, Some(0)), (0, None)] {
            let rows = decode_partial(&partial_body(&doc, options, bits, &other, 0x3f)).unwrap_or_else(|e| panic!("{e}"));
            let [RowChange::Update { after, .. }] = rows.as_slice() else { panic!("{rows:?}") };
            assert_eq!(after.get(5), Some(&BinlogValue::Json("[null]".into())));
        }
    }

    #[test]
    fn a_partial_json_update_that_cannot_be_applied_exactly_is_refused() {
        use super::super::json::tests::J;
        use super::super::json_diff::tests::vector;
        let doc = J::Object(vec![("a".into(), J::I16(1))], false).encode();
        // A diff whose path is not in the old document: the before image is not what blue changed.
        let e = decode_partial(&partial_body(&doc, 1, Some(1), &vector(&[(0, "$.zz", Some(J::I16(2)))]), 0x3f)).expect_err("missing path");
        assert!(matches!(&e, BinlogError::BadValue { column: 5, reason, .. } if reason.contains("REPLACE $.zz")), "{e}");
        // An after image without every column (binlog_row_image = MINIMAL): refused with the setting.
        let mut body = partial_body(&doc, 1, Some(1), &vector(&[(0, "$.a", Some(J::I16(2)))]), 0x3f);
        body[12] = 0x3e;
        let e = decode_partial(&body).expect_err("minimal image");
        assert!(matches!(e, BinlogError::Unsupported { .. }) && e.to_string().contains("binlog_row_image = FULL"), "{e}");
    }

    #[test]
    fn an_extra_data_length_below_two_is_an_error() {
        let mut body = rows_body(RowsKind::Write);
        body[8] = 1;
        body[9] = 0;
        assert!(parse(RowsKind::Write, &body).is_err());
    }
}
