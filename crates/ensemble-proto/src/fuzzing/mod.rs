//! The checks the fuzz targets (`fuzz/` at the workspace root) and the property tests run on
//! untrusted bytes: one function per entry point, which must never panic on any input.
//! Each panics only when a check fails (a decoder that panics, a frame that decodes one way
//! and another, decoding that allocates past [`alloc::bound`], a store whose contents
//! disagree with its counts): that is what a fuzzer reports.
//!
//! Not an API: hidden from the docs, and may change with the fuzz targets. See
//! docs/FUZZING.md.

pub mod alloc;
mod events;
mod queries;
pub mod seeds;
mod stack;
mod table;

pub use events::user_events;
pub use queries::queries;
pub use stack::stack;
pub use table::table_frame;

use bytes::Bytes;

use crate::wire::{self, Frame};

/// `bytes` as a frame off the wire: [`wire::decode`] and [`wire::decode_shared`] agree (both
/// fail, or both give the same frame), neither allocates past [`alloc::bound`], and a frame
/// decoded encodes back to at most as many bytes, which decode to the same frame.
pub fn frame(bytes: &[u8]) -> Option<Frame> {
    let plain = alloc::bounded("wire::decode", bytes.len(), || wire::decode(bytes));
    let shared = Bytes::copy_from_slice(bytes);
    let sliced = alloc::bounded("wire::decode_shared", bytes.len(), || {
        wire::decode_shared(&shared)
    });
    let frame = match (plain, sliced) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "decode and decode_shared disagree");
            a
        }
        (Err(_), Err(_)) => return None,
        (a, b) => panic!("decode gave {a:?}, decode_shared {b:?}"),
    };
    let again = wire::encode(&frame);
    assert!(
        again.len() <= bytes.len(),
        "re-encoded longer than its input"
    );
    assert_eq!(wire::encoded_len(&frame), again.len());
    if let Frame::Message(m) = &frame {
        assert_eq!(wire::message_len(m), again.len());
    }
    assert_eq!(
        wire::decode(&again).ok().as_ref(),
        Some(&frame),
        "no round trip"
    );
    Some(frame)
}

/// The items of a sequence input (a stack's inbound frames, an event log's calls): each is a
/// control byte, a length (two bytes, little-endian) and that many bytes (fewer at the end).
pub fn items(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = bytes.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (data, rest) = rest.split_at(len.min(rest.len()));
        bytes = rest;
        Some((ctl, data))
    })
}

/// A sequence input made of `items` (the inverse of [`items`] for data under 64 KiB).
pub fn sequence<'a>(items: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctl, data) in items {
        let len = u16::try_from(data.len()).expect("an item under 64 KiB");
        out.push(ctl);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}
