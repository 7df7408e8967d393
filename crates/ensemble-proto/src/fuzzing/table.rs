//! A table's records off the wire: `TableMsg::Ops` and `TableMsg::Chunk` decoded as slices of
//! their frame, then applied to stores of both kinds.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::table::store::{record_hash, RECORD_OVERHEAD};
use crate::table::{Change, Kind, Op, Record, Store, TableMsg};
use crate::wire::{self, Frame, Message};

/// `bytes` as a frame off the wire, decoded as the connection task decodes it
/// ([`wire::decode_shared`]). A table write's ops or a join's chunk must come out as slices
/// of the frame (no copy per record); applied to an empty and to a filled store of each kind
/// (writes, a join's forced records, tombstone collection) they never panic and leave the
/// store consistent; and once the records are applied and dropped, nothing holds the frame.
pub fn table_frame(bytes: &[u8]) {
    let frame = Bytes::copy_from_slice(bytes);
    let Ok(Frame::Message(Message::Table(msg))) = wire::decode_shared(&frame) else {
        return;
    };
    let now = Instant::now();
    match &msg {
        TableMsg::Ops { ops, .. } => {
            for op in ops.iter() {
                let (key, value) = op_bytes(op);
                assert_sliced(&frame, key);
                assert_sliced(&frame, value.unwrap_or_default());
            }
            for kind in [Kind::Set, Kind::Bag] {
                for mut store in [Store::new(kind), filled(kind, now)] {
                    store.watched = true;
                    let mut changes = Vec::new();
                    for op in ops.iter() {
                        store.apply(now, op, &mut changes);
                        check(&store);
                    }
                    store.collect_tombstones(now + Duration::from_secs(3600), Duration::ZERO);
                    check(&store);
                }
            }
        }
        TableMsg::Chunk { records, .. } => {
            for r in records {
                assert_sliced(&frame, &r.key);
                assert_sliced(&frame, &r.value);
            }
            for kind in [Kind::Set, Kind::Bag] {
                // A joining node's empty replica takes the records in one pass when they come
                // in key order; one by one, or into a filled replica, otherwise.
                let mut at_once = Store::new(kind);
                let mut changes = Vec::new();
                at_once.force_all(now, vec![records.clone()], &mut changes);
                check(&at_once);
                let mut one_by_one = Store::new(kind);
                for r in records {
                    one_by_one.force(now, r, &mut changes);
                }
                check(&one_by_one);
                assert_eq!(at_once.records(), one_by_one.records());
                assert_eq!(at_once.digest(), one_by_one.digest());
                let mut store = filled(kind, now);
                store.force_all(now, vec![records.clone()], &mut changes);
                check(&store);
            }
        }
        _ => {}
    }
    // Stores keep copies: the frame is free once the decoded message goes.
    drop(msg);
    assert!(frame.is_unique(), "a store kept a slice of the frame");
}

fn op_bytes(op: &Op) -> (&[u8], Option<&[u8]>) {
    match op {
        Op::Insert { key, value, .. } | Op::DeleteObject { key, value, .. } => (key, Some(value)),
        Op::Delete { key, .. } => (key, None),
    }
}

/// A byte string decoded from `frame` is a slice of it (an empty one need not be).
fn assert_sliced(frame: &[u8], part: &[u8]) {
    let (f, p) = (frame.as_ptr_range(), part.as_ptr_range());
    assert!(
        part.is_empty() || (f.start <= p.start && p.end <= f.end),
        "a record's bytes were copied, not sliced from the frame"
    );
}

/// A store of `kind` holding a few records already (and a tombstone), so that ops meet
/// existing keys.
fn filled(kind: Kind, now: Instant) -> Store {
    let mut s = Store::new(kind);
    let mut changes: Vec<Change> = Vec::new();
    for (i, key) in [&b""[..], b"\x01", b"k", &[7; 30]].into_iter().enumerate() {
        let version = s.next_version(9);
        let op = Op::Insert {
            key: Bytes::copy_from_slice(key),
            value: Bytes::from(vec![i as u8; i * 10]),
            version,
        };
        s.apply(now, &op, &mut changes);
    }
    let version = s.next_version(9);
    let key = Bytes::from_static(b"gone");
    s.apply(now, &Op::Delete { key, version }, &mut changes);
    s
}

/// What a store reports agrees with the records it holds.
fn check(store: &Store) {
    let records = store.records();
    assert_eq!(store.len(), records.len(), "live count");
    assert_eq!(store.is_empty(), records.is_empty());
    let ordered = |a: &Record, b: &Record| match store.kind() {
        Kind::Set => a.key < b.key,
        Kind::Bag => (&a.key, &a.value) < (&b.key, &b.value),
    };
    assert!(
        records.windows(2).all(|w| ordered(&w[0], &w[1])),
        "records out of order or repeated"
    );
    let digest = records
        .iter()
        .fold(0, |d, r| d ^ record_hash(&r.key, &r.value, r.version));
    assert_eq!(store.digest(), digest, "digest");
    let memory: usize = records
        .iter()
        .map(|r| r.key.len() + r.value.len() + RECORD_OVERHEAD)
        .sum();
    assert_eq!(store.memory(), memory, "memory estimate");
    for r in &records {
        assert!(store.get_all(&r.key).contains(&r.value));
    }
    if let Some(first) = records.first() {
        assert!(store.get(&first.key).is_some());
    }
    for chunk_bytes in [1, 100] {
        let chunks = store.chunks(chunk_bytes);
        assert!(chunks.iter().all(|c| !c.is_empty()), "an empty chunk");
        assert_eq!(chunks.concat(), records, "chunks of {chunk_bytes} bytes");
    }
}
