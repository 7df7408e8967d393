//! Byte strings decoded as slices of the frame they arrived in, not copies.
//!
//! A frame decoded by [`wire::decode_shared`](crate::wire::decode_shared) is made the current
//! frame of this thread while it decodes. Fields marked
//! `#[serde(deserialize_with = "crate::shared_bytes::deserialize")]` then take a slice of the
//! frame's buffer (a reference count, no allocation); anywhere else (another decoder, a frame
//! decoded from a plain slice) they are copied, as `Bytes` fields are. Only fields whose
//! values are short-lived (a table write's records, copied into the table and dropped) should
//! be marked: a slice keeps its whole frame in memory.

use std::cell::RefCell;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserializer, SeqAccess, Visitor};

thread_local! {
    static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode` on `frame` with `frame` as the current frame of this thread.
pub(crate) fn within<T>(frame: &Bytes, decode: impl FnOnce(&[u8]) -> T) -> T {
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FRAME.set(self.0.take());
        }
    }
    let _restore = Restore(FRAME.replace(Some(frame.clone())));
    decode(frame)
}

/// `part` as a slice of the current frame if it lies inside it, else a copy.
fn slice_of_frame(part: &[u8]) -> Bytes {
    FRAME.with_borrow(|frame| match frame {
        Some(f) if contains(f, part) => f.slice_ref(part),
        _ => Bytes::copy_from_slice(part),
    })
}

fn contains(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr_range(), part.as_ptr_range());
    !part.is_empty() && w.start <= p.start && p.end <= w.end
}

/// Deserializes a byte string as `Bytes`, sharing the current frame's buffer when it can.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    struct Shared;
    impl<'de> Visitor<'de> for Shared {
        type Value = Bytes;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(slice_of_frame(v))
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        // Formats without byte strings (JSON) write them as sequences of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(Bytes::from(v))
        }
    }
    d.deserialize_bytes(Shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Two {
        #[serde(deserialize_with = "deserialize")]
        a: Bytes,
        #[serde(deserialize_with = "deserialize")]
        b: Bytes,
    }

    fn two() -> Two {
        Two {
            a: Bytes::from_static(b"key"),
            b: Bytes::from(vec![7; 300]),
        }
    }

    #[test]
    fn inside_a_frame_fields_are_slices_of_it() {
        let frame = Bytes::from(postcard::to_allocvec(&two()).unwrap());
        let got: Two = within(&frame, |b| postcard::from_bytes(b).unwrap());
        assert_eq!(got, two());
        for field in [&got.a, &got.b] {
            assert!(contains(&frame, field), "not a slice of the frame");
        }
    }

    #[test]
    fn elsewhere_fields_are_copies() {
        let frame = postcard::to_allocvec(&two()).unwrap();
        let other = Bytes::from_static(b"another frame");
        let got: Two = within(&other, |_| postcard::from_bytes(&frame).unwrap());
        assert_eq!(got, two());
        assert!(!contains(&frame, &got.a));
        let json: Two = serde_json::from_str(&serde_json::to_string(&two()).unwrap()).unwrap();
        assert_eq!(json, two());
    }
}
