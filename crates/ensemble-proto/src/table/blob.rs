//! The bytes of a stored value (and of a bag's object, or a tombstone's key). Short ones sit
//! inside the map entry itself; longer ones take one heap block. A record of a short key (see
//! `keys.rs`) and a short value then costs one map entry and no allocation of its own: less
//! memory to fault in and fill, which is most of what inserting many records costs.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

/// Bytes kept inline, so that a blob is as large as a `Vec` (24 bytes).
const INLINE: usize = 22;

/// An owned byte string, inline up to 22 bytes.
#[derive(Clone)]
pub(crate) enum Blob {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl From<&[u8]> for Blob {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Blob::Inline(b.len() as u8, buf)
        } else {
            Blob::Heap(b.into())
        }
    }
}

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Blob::Inline(len, buf) => &buf[..*len as usize],
            Blob::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Blob {}

impl PartialOrd for Blob {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// Orders as the bytes do (as `Borrow<[u8]>` requires).
impl Ord for Blob {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&bytes::Bytes::copy_from_slice(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_blobs_keep_their_bytes_and_order_as_slices() {
        assert_eq!(std::mem::size_of::<Blob>(), 24);
        assert_eq!(std::mem::size_of::<Option<Blob>>(), 24);
        let cases: [&[u8]; 12] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\x01",
            b"ab",
            b"\x09m12-345",
            &[7; 22],
            &[7; 23],
            &[0xff; 22],
            &[0; 22],
            &[9; 300],
        ];
        for c in cases {
            let b = Blob::from(c);
            assert_eq!(&*b, c);
            assert_eq!(matches!(b, Blob::Inline(..)), c.len() <= INLINE);
        }
        for x in cases {
            for y in cases {
                assert_eq!(Blob::from(x).cmp(&Blob::from(y)), x.cmp(y), "{x:?} {y:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn blobs_order_as_their_bytes(
            x in proptest::collection::vec(0u8..4, 0..26),
            y in proptest::collection::vec(0u8..4, 0..26),
        ) {
            proptest::prop_assert_eq!(Blob::from(&x[..]).cmp(&Blob::from(&y[..])), x.cmp(&y));
        }
    }
}
