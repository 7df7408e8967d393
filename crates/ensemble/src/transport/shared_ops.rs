//! One encoding of a table write for every peer it goes to.
//!
//! A write made here goes to each replica of its table in a message of its own (each with its
//! own sequence number), but the writes themselves, most of the bytes, are the same `Arc` for
//! all of them. The first connection to seal one encodes the writes; the others copy those
//! bytes into their frame (see [`wire::encode_ops_into`]) instead of encoding them again.

use std::sync::{Arc, Mutex, Weak};

use ensemble_proto::table::Op;
use ensemble_proto::wire;

/// Fewer writes than this are encoded in place: sharing would cost more than it saves.
pub(crate) const MIN_SHARED: usize = 16;

/// Longer encodings are not kept: the last one stays until the next write comes, and this
/// bounds what it holds meanwhile.
const MAX_KEPT: usize = 1 << 20;

/// Writes and their encoding. The weak reference keeps the writes' allocation, so its address
/// names them as long as it is kept (writes changed in place move to a new one, see
/// `Arc::make_mut`).
type Encoded = (Weak<Vec<Op>>, Arc<[u8]>);

/// The encoding of the last writes sealed by any connection of this node.
#[derive(Debug, Default)]
pub(crate) struct SharedOps {
    last: Mutex<Option<Encoded>>,
}

impl SharedOps {
    /// The encoding of `ops` ([`wire::encode_ops`]): made by the first connection that asks,
    /// while the others wait for it rather than encode the same writes again.
    pub fn encoded(&self, ops: &Arc<Vec<Op>>) -> Arc<[u8]> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((weak, bytes)) = &*last {
            if std::ptr::eq(weak.as_ptr(), Arc::as_ptr(ops)) {
                return bytes.clone();
            }
        }
        let bytes: Arc<[u8]> = wire::encode_ops(ops).into();
        *last = (bytes.len() <= MAX_KEPT).then(|| (Arc::downgrade(ops), bytes.clone()));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ensemble_proto::table::Version;

    fn ops(n: u64) -> Arc<Vec<Op>> {
        let op = |i: u64| Op::Insert {
            key: Bytes::from(format!("k{i}")),
            value: Bytes::from_static(b"v"),
            version: Version { time: i, origin: 7 },
        };
        Arc::new((0..n).map(op).collect())
    }

    #[test]
    fn the_same_writes_are_encoded_once_and_other_writes_again() {
        let shared = SharedOps::default();
        let (a, b) = (ops(20), ops(30));
        let first = shared.encoded(&a);
        assert_eq!(&first[..], &wire::encode_ops(&a)[..]);
        assert!(Arc::ptr_eq(&first, &shared.encoded(&a.clone())));
        let other = shared.encoded(&b);
        assert_eq!(&other[..], &wire::encode_ops(&b)[..]);
        // Equal writes in another allocation are other writes (the address names them).
        let copy = Arc::new((*b).clone());
        assert!(!Arc::ptr_eq(&other, &shared.encoded(&copy)));
        assert_eq!(&shared.encoded(&copy)[..], &other[..]);
    }

    #[test]
    fn a_long_encoding_is_not_kept() {
        let shared = SharedOps::default();
        let long = Arc::new(
            (0..3u64)
                .map(|i| Op::Insert {
                    key: Bytes::from(vec![i as u8]),
                    value: Bytes::from(vec![0; MAX_KEPT / 2]),
                    version: Version { time: i, origin: 7 },
                })
                .collect(),
        );
        let first = shared.encoded(&long);
        assert!(first.len() > MAX_KEPT);
        assert!(shared.last.lock().unwrap().is_none());
        assert_eq!(shared.encoded(&long), first);
    }

    #[test]
    fn writes_changed_in_place_are_encoded_again() {
        let shared = SharedOps::default();
        let mut a = ops(20);
        let before = shared.encoded(&a);
        Arc::make_mut(&mut a).truncate(3);
        let after = shared.encoded(&a);
        assert_eq!(&after[..], &wire::encode_ops(&a)[..]);
        assert_ne!(before, after);
    }
}
