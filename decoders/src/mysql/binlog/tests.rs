//! Whole-event tests with byte-built events: framing, checksums, the FDE-less paths, MySQL-8-only events
//! and truncation of every event family at every byte.

use super::format::tests::fde_bytes;
use super::gtid_mysql::tests::{gtid_body, previous_gtids_body};
use super::query::tests::query_body;
use super::rows::tests::rows_body;
use super::table_map::tests::table_map_body;
use super::*;

/// A whole event: header, `body`, and a CRC32 when `crc` is set.
fn event(type_code: u8, body: &[u8], crc: bool) -> Vec<u8> {
    let size = HEADER_LEN + body.len() + if crc { 4 } else { 0 };
    let size = u32::try_from(size).unwrap_or(0);
    let mut e = Vec::new();
    e.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    e.push(type_code);
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&(1000 + size).to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(body);
    if crc {
        let c = crc32(&e);
        e.extend_from_slice(&c.to_le_bytes());
    }
    e
}

fn crc_fde() -> FormatDescription {
    match parse_event(&fde_bytes("10.11.6-MariaDB-log", 1), &FormatDescription::default_v4()) {
        Ok(Event { event: BinlogEvent::FormatDescription(f), .. }) => f,
        other => panic!("{other:?}"),
    }
}

fn mysql8_fde() -> FormatDescription {
    match parse_event(&fde_bytes("8.0.36", 1), &FormatDescription::default_v4()) {
        Ok(Event { event: BinlogEvent::FormatDescription(f), .. }) => f,
        other => panic!("{other:?}"),
    }
}

fn xid_event(crc: bool) -> Vec<u8> {
    event(event_type::XID, &77u64.to_le_bytes(), crc)
}

#[test]
fn an_event_with_a_valid_checksum_parses_and_a_flipped_bit_is_a_checksum_error() {
    let fde = crc_fde();
    let bytes = xid_event(true);
    let e = parse_event(&bytes, &fde).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event, BinlogEvent::Xid(Xid { xid: 77 }));
    assert_eq!(e.header.server_id, 1);
    assert!(e.event.ends_transaction());
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        let res = parse_event(&bad, &fde);
        assert!(res.is_err(), "bit flip at {i} went unnoticed: {res:?}");
    }
    let mut bad = bytes.clone();
    bad[HEADER_LEN] ^= 1;
    assert!(matches!(parse_event(&bad, &fde), Err(BinlogError::Checksum { event_type: 0x10, .. })));
}

#[test]
fn without_checksums_the_whole_body_is_the_event() {
    let e = parse_event(&xid_event(false), &FormatDescription::default_v4()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event, BinlogEvent::Xid(Xid { xid: 77 }));
    // The same bytes read as if they had a checksum: the XID loses 4 bytes and the CRC cannot match.
    assert!(parse_event(&xid_event(false), &crc_fde()).is_err());
}

#[test]
fn an_event_size_that_disagrees_with_the_bytes_is_an_error() {
    let mut bytes = xid_event(false);
    bytes.push(0);
    assert!(matches!(parse_event(&bytes, &FormatDescription::default_v4()), Err(BinlogError::Malformed { offset: 9, .. })));
}

#[test]
fn the_fake_rotate_of_a_dump_loses_its_checksum_bytes_before_any_format_description() {
    let mut body = 4u64.to_le_bytes().to_vec();
    body.extend_from_slice(b"mysql-bin.000001");
    let mut bytes = event(event_type::ROTATE, &body, true);
    // Artificial: timestamp 0, log_pos 0, LOG_EVENT_ARTIFICIAL_F.
    bytes[..4].copy_from_slice(&[0; 4]);
    bytes[13..17].copy_from_slice(&[0; 4]);
    bytes[17..19].copy_from_slice(&FLAG_ARTIFICIAL.to_le_bytes());
    let n = bytes.len() - 4;
    let c = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&c.to_le_bytes());
    let e = parse_event(&bytes, &FormatDescription::default_v4()).unwrap_or_else(|e| panic!("{e}"));
    assert!(e.header.is_artificial());
    assert_eq!(e.event, BinlogEvent::Rotate(Rotate { position: 4, file_name: "mysql-bin.000001".into() }));
    // Without a checksum the name is kept whole.
    let plain = event(event_type::ROTATE, &body, false);
    let e = parse_event(&plain, &FormatDescription::default_v4()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event, BinlogEvent::Rotate(Rotate { position: 4, file_name: "mysql-bin.000001".into() }));
}

#[test]
fn a_heartbeat_names_the_file_and_the_header_holds_the_position() {
    let bytes = event(event_type::HEARTBEAT, b"mysql-bin.000007", true);
    let e = parse_event(&bytes, &crc_fde()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event, BinlogEvent::Heartbeat(Heartbeat { file_name: "mysql-bin.000007".into() }));
    assert_eq!(usize::try_from(e.header.log_pos).ok(), Some(1000 + bytes.len()));
}

#[test]
fn a_mysql_heartbeat_v2_is_a_heartbeat_whatever_its_fields() {
    // Field 1 (file name) "binlog.000001", field 2 (position) 157, as type-length-value entries.
    let mut body = vec![1, 13];
    body.extend_from_slice(b"binlog.000001");
    body.extend_from_slice(&[2, 1, 157]);
    let e = parse_event(&event(event_type::HEARTBEAT_V2, &body, true), &mysql8_fde()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(e.event, BinlogEvent::Heartbeat(_)), "{:?}", e.event);
}

#[test]
fn mysql_8_gtid_and_previous_gtids_events_parse_through_parse_event() {
    let fde = mysql8_fde();
    let e = parse_event(&event(event_type::MYSQL_GTID, &gtid_body(), true), &fde).unwrap_or_else(|e| panic!("{e}"));
    let BinlogEvent::MysqlGtid(g) = e.event else { panic!("{:?}", e.event) };
    assert!(g.assigned);
    assert_eq!(g.gno, 23);
    let e = parse_event(&event(event_type::MYSQL_ANONYMOUS_GTID, &gtid_body(), true), &fde).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(e.event, BinlogEvent::MysqlGtid(MysqlGtid { assigned: false, .. })));
    let e = parse_event(&event(event_type::PREVIOUS_GTIDS, &previous_gtids_body(), true), &fde).unwrap_or_else(|e| panic!("{e}"));
    let BinlogEvent::PreviousGtids(p) = e.event else { panic!("{:?}", e.event) };
    assert_eq!(p.sets.len(), 2);
}

#[test]
fn v2_rows_events_decode_with_their_table_map() {
    let fde = mysql8_fde();
    let map = match parse_event(&event(event_type::TABLE_MAP, &table_map_body(), true), &fde) {
        Ok(Event { event: BinlogEvent::TableMap(m), .. }) => m,
        other => panic!("{other:?}"),
    };
    for (code, kind) in
        [(event_type::WRITE_ROWS_V2, RowsKind::Write), (event_type::UPDATE_ROWS_V2, RowsKind::Update), (event_type::DELETE_ROWS_V2, RowsKind::Delete)]
    {
        let e = parse_event(&event(code, &rows_body(kind), true), &fde).unwrap_or_else(|e| panic!("{e}"));
        let BinlogEvent::Rows(rows) = e.event else { panic!("{:?}", e.event) };
        assert_eq!((rows.kind, rows.version, rows.type_code()), (kind, 2, code));
        let changes = decode_rows(&rows, &map).unwrap_or_else(|e| panic!("{e}"));
        assert!(!changes.is_empty());
    }
}

#[test]
fn compressed_mariadb_events_are_refused_with_the_setting_that_avoids_them() {
    let fde = crc_fde();
    for (code, fix) in [
        (event_type::MARIADB_QUERY_COMPRESSED, "log_bin_compress = OFF"),
        (event_type::MARIADB_WRITE_ROWS_COMPRESSED_V1, "log_bin_compress = OFF"),
        (event_type::MARIADB_UPDATE_ROWS_COMPRESSED_V1, "log_bin_compress = OFF"),
        (event_type::MARIADB_DELETE_ROWS_COMPRESSED_V1, "log_bin_compress = OFF"),
    ] {
        let err = parse_event(&event(code, &[0; 12], true), &fde).err();
        let Some(err @ BinlogError::Unsupported { .. }) = err else { panic!("{code}: {err:?}") };
        assert!(err.to_string().contains(fix), "{err}");
        assert_eq!(err.class(), crate::ErrorClass::Fatal);
    }
}

#[test]
fn unknown_event_types_come_back_with_their_body() {
    let e = parse_event(&event(0x1D, b"INSERT ...", true), &crc_fde()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event, BinlogEvent::Unknown { type_code: 0x1D, data: b"INSERT ...".to_vec() });
}

#[test]
fn split_file_checks_the_magic_and_every_event_size() {
    let mut file = BINLOG_MAGIC.to_vec();
    file.extend_from_slice(&fde_bytes("10.11.6-MariaDB-log", 1));
    file.extend_from_slice(&xid_event(true));
    let events: Vec<_> = split_file(&file).collect();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(Result::is_ok));
    let mut cut = file.clone();
    cut.truncate(file.len() - 1);
    let events: Vec<_> = split_file(&cut).collect();
    assert_eq!(events.len(), 2);
    assert!(events[1].is_err());
    assert!(split_file(b"\xfebim").next().is_some_and(|r| r.is_err()));
    assert!(split_file(b"").next().is_some_and(|r| r.is_err()));
    assert!(split_file(&BINLOG_MAGIC).next().is_none());
}

/// Every family's byte-built event, with a checksum.
fn all_events() -> Vec<Vec<u8>> {
    let mut gtid = 5u64.to_le_bytes().to_vec();
    gtid.extend_from_slice(&0u32.to_le_bytes());
    gtid.push(gtid_flags::GROUP_COMMIT_ID);
    gtid.extend_from_slice(&9u64.to_le_bytes());
    let mut list = 1u32.to_le_bytes().to_vec();
    list.extend_from_slice(&[0; 16]);
    let mut checkpoint = 3u32.to_le_bytes().to_vec();
    checkpoint.extend_from_slice(b"bin");
    vec![
        event(event_type::QUERY, &query_body("db", "BEGIN"), true),
        event(event_type::XID, &1u64.to_le_bytes(), true),
        event(event_type::MARIADB_GTID, &gtid, true),
        event(event_type::MARIADB_GTID_LIST, &list, true),
        event(event_type::MARIADB_BINLOG_CHECKPOINT, &checkpoint, true),
        event(event_type::TABLE_MAP, &table_map_body(), true),
        event(event_type::WRITE_ROWS_V2, &rows_body(RowsKind::Write), true),
        event(event_type::UPDATE_ROWS_V2, &rows_body(RowsKind::Update), true),
        event(event_type::MYSQL_GTID, &gtid_body(), true),
        event(event_type::PREVIOUS_GTIDS, &previous_gtids_body(), true),
    ]
}

#[test]
fn every_truncation_of_every_event_is_an_error() {
    let fde = crc_fde();
    for bytes in all_events() {
        assert!(parse_event(&bytes, &fde).is_ok(), "{:?}", parse_event(&bytes, &fde));
        for n in 0..bytes.len() {
            assert!(parse_event(&bytes[..n], &fde).is_err(), "type {} cut at {n}", bytes[4]);
        }
    }
}

#[test]
fn every_truncation_with_a_consistent_size_and_checksum_never_panics() {
    let fde = crc_fde();
    for bytes in all_events() {
        for n in HEADER_LEN..bytes.len() - 4 {
            // Re-frame the first n bytes as an event of their own.
            let mut e = bytes[..n].to_vec();
            let size = u32::try_from(n + 4).unwrap_or(0);
            e[9..13].copy_from_slice(&size.to_le_bytes());
            let c = crc32(&e);
            e.extend_from_slice(&c.to_le_bytes());
            if let Ok(Event { event: BinlogEvent::Rows(rows), .. }) = parse_event(&e, &fde) {
                let map = super::rows::tests::table();
                let _ = decode_rows(&rows, &map);
            }
        }
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// A table map and WRITE_ROWS captured from MariaDB 11.8.9 for `comp (id INT PRIMARY KEY,
/// v VARCHAR(200) COMPRESSED, b BLOB COMPRESSED, t TEXT COMPRESSED CHARACTER SET latin1)` and
/// `INSERT … VALUES (1, REPEAT('x', 150), REPEAT(0x00FF, 1000), 'é')`: the compressed types (141
/// VARCHAR, 140 BLOB) take their plain types' metadata and charsets, the values arrive decompressed
/// (raw deflate, MariaDB's default), and a value too short to compress is stored behind a zero header.
#[test]
fn mariadb_compressed_columns_from_a_real_server_decode_to_their_values() {
    let fde = match parse_event(&fde_bytes("11.8.9-MariaDB-0+deb13u1-log", 1), &FormatDescription::default_v4()) {
        Ok(Event { event: BinlogEvent::FormatDescription(f), .. }) => f,
        other => panic!("{other:?}"),
    };
    let map = unhex(
        "d21b056b13010000004b000000000000000000120000000000010001640004636f6d700004038d8c8c04210302020e0101000305fc00093f080409026964017601620174080100c74470a7",
    );
    let rows = unhex(
        "d21b056b17010000004b0000000000000000001200000000000100040ff00100000008008996aba8188c000015008a07d063f8cf300a47e1281c85a370148ec2210e01020000e99a5ce5bf",
    );
    let map = match parse_event(&map, &fde) {
        Ok(Event { event: BinlogEvent::TableMap(m), .. }) => m,
        other => panic!("{other:?}"),
    };
    let types: Vec<u8> = map.columns.iter().map(|c| c.field_type.code()).collect();
    assert_eq!(types, [3, 141, 140, 140]);
    let collations: Vec<Option<u64>> = map.columns.iter().map(|c| c.collation).collect();
    assert_eq!(collations, [None, Some(2304), Some(63), Some(8)]);
    let Ok(Event { event: BinlogEvent::Rows(rows), .. }) = parse_event(&rows, &fde) else { panic!("rows") };
    let changes = decode_rows(&rows, &map).unwrap_or_else(|e| panic!("{e}"));
    let [RowChange::Insert { after }] = &changes[..] else { panic!("{changes:?}") };
    let values = after.clone().into_columns();
    assert_eq!(values[0], Some(BinlogValue::Int(1)));
    assert_eq!(values[1], Some(BinlogValue::Bytes(b"x".repeat(150))));
    assert_eq!(values[2], Some(BinlogValue::Bytes([0x00, 0xFF].repeat(1000))));
    assert_eq!(values[3], Some(BinlogValue::Bytes(vec![0xE9])));
}
