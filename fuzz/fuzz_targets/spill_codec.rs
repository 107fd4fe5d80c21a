//! Fuzz target: the spill codec (`turnout_sinks::codec`) — decoding arbitrary bytes as a chunk (with
//! a table list of a few tables) and as single values must never panic or over-allocate; anything
//! that does decode must encode back to bytes that decode to the same changes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use turnout_decoders::schema::{Column, ColumnType, ReplicaIdentity, TableName, TableSchema};
use turnout_sinks::codec;

fn tables() -> Vec<Arc<TableSchema>> {
    (0..3)
        .map(|i| {
            Arc::new(TableSchema {
                relation_id: i,
                name: TableName::new("public", format!("t{i}")),
                replica_identity: ReplicaIdentity::Default,
                columns: vec![Column { name: "id".into(), ty: ColumnType::pg(23, -1), is_key: true }],
                foreign_key_checks: true,
            })
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let tables = tables();
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(changes) = codec::decode_chunk(bytes.clone(), &tables, |_| true) {
        let pairs: Vec<(u64, turnout_sinks::RowChange)> = changes.into_iter().map(|c| (0, c)).collect();
        let mut out = BytesMut::new();
        let mut seen = Vec::new();
        codec::encode_chunk(&mut out, &pairs, &mut seen);
        let again = codec::decode_chunk(out.freeze(), &seen, |_| true).expect("re-encoded chunk decodes");
        assert_eq!(again.len(), pairs.len());
    }
    let mut value_bytes = bytes;
    while !value_bytes.is_empty() {
        if codec::get_value(&mut value_bytes).is_err() {
            break;
        }
    }
});
