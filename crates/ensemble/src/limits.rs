//! What fits in one frame, and what a table may be called: the checks the public API makes
//! before anything is queued, so that nothing a caller was allowed to send makes a peer
//! refuse a frame and close a healthy connection (a frame over [`crate::Config::max_frame_size`]
//! does), and Ensemble's own tables stay Ensemble's.
//!
//! A frame carries one [`Message`] encoded with postcard (then sealed: the tag is on top of
//! `max_frame_size`, see the transport). The sizes here are exact upper bounds: the encoded
//! size of the largest message the call can become (the longest id and version varints, the
//! relayed form of a named message).

use bytes::Bytes;
use ensemble_proto::messaging::{DirectMsg, RelayMsg};
use ensemble_proto::table::WriteOp;
use ensemble_proto::wire::{self, Message};

use crate::error::Error;

/// Table names starting with this are Ensemble's own (the tracker's `ensemble.tracker`):
/// [`crate::Node::table`] refuses them.
pub const RESERVED_TABLE_PREFIX: &str = "ensemble.";

/// Longest table name, in bytes.
pub const MAX_TABLE_NAME: usize = 128;

/// Bytes of a postcard varint holding `n`.
fn varint_len(n: u64) -> usize {
    let bits = (u64::BITS - n.leading_zeros()).max(1) as usize;
    bits.div_ceil(7)
}

/// Bytes a length-prefixed byte string of `len` bytes takes.
fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

/// The largest frame a named message can take: an acknowledged one (with the longest id),
/// relayed (client-server: with the sender's and receiver's names and a hop count around it).
pub(crate) fn named_message_len(
    from: &str,
    to: &str,
    name: &str,
    payload: &Bytes,
    channel: Option<&str>,
) -> usize {
    // Measured with an empty payload (a small message), then the payload put back in.
    let msg = Message::Relay(RelayMsg {
        from: from.to_owned(),
        to: to.to_owned(),
        hops: u8::MAX,
        msg: DirectMsg::Forward {
            id: u64::MAX,
            name: name.to_owned(),
            payload: Bytes::new(),
            channel: channel.map(str::to_owned),
        },
    });
    wire::message_len(&msg) - bytes_len(0) + bytes_len(payload.len())
}

/// The largest frame a table write of `ops` to `table` can take (`TableMsg::Ops` with the
/// longest join id, sequence number and versions).
pub(crate) fn table_write_len(table: &str, ops: &[WriteOp]) -> usize {
    // Frame, Message and TableMsg tags; the table name, join id, seq and the number of ops.
    let head = 3 + bytes_len(table.len()) + 10 + 10 + varint_len(ops.len() as u64);
    // Each op: its tag, its key and value, and a version of two u64 varints.
    let version = 20;
    ops.iter().fold(head, |n, op| {
        n + 1
            + version
            + match op {
                WriteOp::Insert(k, v) | WriteOp::DeleteObject(k, v) => {
                    bytes_len(k.len()) + bytes_len(v.len())
                }
                WriteOp::Delete(k) => bytes_len(k.len()),
            }
    })
}

/// `Err(Error::TooLarge)` if a frame of `size` bytes is over `max`.
pub(crate) fn fits(what: &'static str, size: usize, max: usize) -> Result<(), Error> {
    if size > max {
        return Err(Error::TooLarge { what, size, max });
    }
    Ok(())
}

/// Checks a table name: 1 to [`MAX_TABLE_NAME`] bytes, no control characters; and unless
/// `internal` (Ensemble's own tables), not starting with [`RESERVED_TABLE_PREFIX`].
pub(crate) fn table_name_ok(name: &str, internal: bool) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_TABLE_NAME || name.chars().any(char::is_control) {
        return Err(Error::Config(format!(
            "table name {name:?} must be 1 to {MAX_TABLE_NAME} bytes without control characters"
        )));
    }
    if !internal && name.starts_with(RESERVED_TABLE_PREFIX) {
        return Err(Error::ReservedName(name.to_owned()));
    }
    Ok(())
}

/// Checks a name a program is about to open as a table with [`crate::Node::table`], without
/// opening it: the same refusals ([`Error::ReservedName`], or [`Error::Config`] for an empty,
/// overlong or control-character name).
pub fn check_table_name(name: &str) -> Result<(), Error> {
    table_name_ok(name, false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ensemble_proto::table::{Op, TableMsg, Version};

    use super::*;

    #[test]
    fn varints_take_seven_bits_a_byte() {
        for (n, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(n), len, "{n}");
            assert_eq!(wire::encoded_len(&n), len, "{n}");
        }
    }

    #[test]
    fn a_named_message_is_measured_as_its_largest_frame() {
        for size in [0, 1, 127, 128, 20_000, 1 << 20] {
            let payload = Bytes::from(vec![7u8; size]);
            let largest = Message::Relay(RelayMsg {
                from: "app1".into(),
                to: "app2".into(),
                hops: u8::MAX,
                msg: DirectMsg::Forward {
                    id: u64::MAX,
                    name: "jobs".into(),
                    payload: payload.clone(),
                    channel: Some("bulk".into()),
                },
            });
            let got = named_message_len("app1", "app2", "jobs", &payload, Some("bulk"));
            assert_eq!(got, wire::message_len(&largest), "{size}");
            let direct = Message::Direct(DirectMsg::Cast {
                name: "jobs".into(),
                payload,
                channel: Some("bulk".into()),
            });
            assert!(wire::message_len(&direct) <= got);
        }
    }

    #[test]
    fn a_table_write_is_measured_as_its_largest_frame() {
        let max = Version {
            time: u64::MAX,
            origin: u64::MAX,
        };
        for (n, size) in [(0, 0), (1, 3), (3, 200), (200, 10), (2, 70_000)] {
            let ops: Vec<WriteOp> = (0..n)
                .map(|i| {
                    let k = Bytes::from(vec![i as u8; size / 2 + 1]);
                    match i % 3 {
                        0 => WriteOp::Insert(k, Bytes::from(vec![1u8; size])),
                        1 => WriteOp::Delete(k),
                        _ => WriteOp::DeleteObject(k, Bytes::from(vec![2u8; size])),
                    }
                })
                .collect();
            let as_sent: Vec<Op> = ops
                .iter()
                .map(|w| match w.clone() {
                    WriteOp::Insert(key, value) => Op::Insert {
                        key,
                        value,
                        version: max,
                    },
                    WriteOp::Delete(key) => Op::Delete { key, version: max },
                    WriteOp::DeleteObject(key, value) => Op::DeleteObject {
                        key,
                        value,
                        version: max,
                    },
                })
                .collect();
            let msg = Message::Table(TableMsg::Ops {
                table: "sessions".into(),
                join_id: u64::MAX,
                seq: u64::MAX,
                ops: Arc::new(as_sent),
            });
            // The Frame tag is one byte: `message_len` counts it.
            assert_eq!(
                table_write_len("sessions", &ops),
                wire::message_len(&msg),
                "{n} ops of {size}"
            );
        }
    }

    #[test]
    fn table_names_are_checked() {
        assert!(check_table_name("sessions").is_ok());
        assert!(matches!(
            check_table_name("ensemble.tracker"),
            Err(Error::ReservedName(_))
        ));
        assert!(table_name_ok("ensemble.tracker", true).is_ok());
        for bad in ["", "a\nb", "tab\tle", "\u{7f}", &"x".repeat(129)] {
            assert!(
                matches!(table_name_ok(bad, true), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        assert!(check_table_name(&"x".repeat(128)).is_ok());
    }
}
