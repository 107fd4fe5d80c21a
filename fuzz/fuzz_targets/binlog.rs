//! libFuzzer target for the MySQL/MariaDB binlog parser and row decoder: whatever the bytes, parsing and
//! decoding must return a value or an error, never panic or allocate without bound.
//!
//! Each input is used four ways:
//! 1. as one event for `parse_event` before any format description (`FormatDescription::default_v4`),
//!    which is also how a format description event itself is read;
//! 2. as one event with the CRC32 format description of the captured MariaDB files, and again with its
//!    last four bytes replaced by the CRC of the rest, so the body parsers run past the checksum check;
//! 3. split in two at a big-endian `u16` prefix: a TABLE_MAP body and a rows-event body (both framed with
//!    a fresh header and checksum), then `decode_rows` of the second with the first, forcing the table ids
//!    to match so the value decoders run;
//! 4. as a whole binlog file through `split_file` (with the magic prepended when missing);
//! 5. as one event with the format description of the captured MySQL 9.7 files, and as the body of a
//!    PARTIAL_UPDATE_ROWS event (`binlog_row_value_options = PARTIAL_JSON`) decoded with the captured
//!    table map of `fx.mj` (id, JSON, VECTOR), so JSON diffs are parsed and applied to before images.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use turnout_decoders::mysql::binlog::{
    crc32, decode_rows, event_type, parse_event, split_file, BinlogEvent, FormatDescription, TableMap, BINLOG_MAGIC,
};

/// The first captured binlog file: its format description says CRC32, MariaDB 10.11.
const CAPTURE: &[u8] = include_bytes!("../../decoders/tests/fixtures/mariadb/mysql-bin.000001");
/// The first captured MySQL 9.7 file: CRC32, GTIDs, the `fx.mj` table with a JSON column.
const MYSQL_CAPTURE: &[u8] = include_bytes!("../../decoders/tests/fixtures/mysql97/mysql-bin.000001");

fn fde_of(capture: &[u8]) -> FormatDescription {
    let first = split_file(capture).next().and_then(Result::ok).unwrap_or_default();
    match parse_event(first, &FormatDescription::default_v4()).map(|e| e.event) {
        Ok(BinlogEvent::FormatDescription(f)) => f,
        other => panic!("the capture does not start with a format description: {other:?}"),
    }
}

fn mariadb_fde() -> &'static FormatDescription {
    static FDE: OnceLock<FormatDescription> = OnceLock::new();
    FDE.get_or_init(|| fde_of(CAPTURE))
}

/// The MySQL capture's format description and its table map of `fx.mj`.
fn mysql() -> &'static (FormatDescription, TableMap) {
    static MYSQL: OnceLock<(FormatDescription, TableMap)> = OnceLock::new();
    MYSQL.get_or_init(|| {
        let fde = fde_of(MYSQL_CAPTURE);
        let map = split_file(MYSQL_CAPTURE)
            .flatten()
            .find_map(|raw| match parse_event(raw, &fde).map(|e| e.event) {
                Ok(BinlogEvent::TableMap(m)) if m.table == "mj" => Some(m),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no table map of fx.mj in the MySQL capture"));
        (fde, map)
    })
}

/// `body` framed as an event of `type_code` with a header and a CRC32 trailer.
fn frame(type_code: u8, body: &[u8]) -> Vec<u8> {
    let size = u32::try_from(19 + body.len() + 4).unwrap_or(u32::MAX);
    let mut e = Vec::with_capacity(body.len() + 23);
    e.extend_from_slice(&0u32.to_le_bytes());
    e.push(type_code);
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(body);
    let crc = crc32(&e);
    e.extend_from_slice(&crc.to_le_bytes());
    e
}

fuzz_target!(|input: &[u8]| {
    let fde = mariadb_fde();

    let _ = parse_event(input, &FormatDescription::default_v4());
    let _ = parse_event(input, fde);
    if input.len() >= 23 {
        let mut fixed = input.to_vec();
        let n = fixed.len() - 4;
        let crc = crc32(&fixed[..n]);
        fixed[n..].copy_from_slice(&crc.to_le_bytes());
        let _ = parse_event(&fixed, fde);
    }

    if input.len() >= 3 {
        let split = usize::from(u16::from_be_bytes([input[0], input[1]])).min(input.len() - 2);
        let (map_body, rest) = input[2..].split_at(split);
        let (rows_type, rows_body) = rest.split_first().map_or((0, &[][..]), |(t, b)| (*t, b));
        let rows_type = [
            event_type::WRITE_ROWS_V1,
            event_type::UPDATE_ROWS_V1,
            event_type::DELETE_ROWS_V1,
            event_type::WRITE_ROWS_V2,
            event_type::UPDATE_ROWS_V2,
            event_type::DELETE_ROWS_V2,
        ][usize::from(rows_type % 6)];
        let map = parse_event(&frame(event_type::TABLE_MAP, map_body), fde);
        let rows = parse_event(&frame(rows_type, rows_body), fde);
        if let (Ok(map), Ok(rows)) = (map, rows) {
            if let (BinlogEvent::TableMap(map), BinlogEvent::Rows(mut rows)) = (map.event, rows.event) {
                let _ = decode_rows(&rows, &map);
                rows.table_id = map.table_id;
                rows.column_count = map.columns.len();
                let needed = map.columns.len().div_ceil(8);
                rows.columns_present.resize(needed, 0xff);
                if let Some(after) = rows.update_columns_present.as_mut() {
                    after.resize(needed, 0xff);
                }
                if let Ok(changes) = decode_rows(&rows, &map) {
                    assert!(changes.len() <= rows.rows.len());
                }
            }
        }
    }

    let (mysql_fde, mj) = mysql();
    let _ = parse_event(input, mysql_fde);
    if let Ok(BinlogEvent::Rows(mut rows)) = parse_event(&frame(event_type::PARTIAL_UPDATE_ROWS, input), mysql_fde).map(|e| e.event) {
        rows.table_id = mj.table_id;
        rows.column_count = mj.columns.len();
        if let Ok(changes) = decode_rows(&rows, mj) {
            assert!(changes.len() <= rows.rows.len());
        }
    }

    let file: Vec<u8> = if input.starts_with(&BINLOG_MAGIC) { input.to_vec() } else { [&BINLOG_MAGIC[..], input].concat() };
    let mut fde = FormatDescription::default_v4();
    for raw in split_file(&file).flatten() {
        if let Ok(e) = parse_event(raw, &fde) {
            if let BinlogEvent::FormatDescription(f) = e.event {
                fde = f;
            }
        }
    }
});
