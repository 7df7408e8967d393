//! The ordered map a replica keeps its records in, keyed by encoded keys.
//!
//! Looking a key up in the B-tree is most of what applying a write costs. Keys of up to 23
//! bytes (most keys) are kept in a fixed 24-byte array of their bytes, zero-padded, and their
//! length, so comparing two of them is comparing three machine words, with no branch on how
//! each is stored. Longer keys live in a second map; iterating walks both in byte order.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::btree_map::{self, BTreeMap};
use std::fmt;
use std::iter::Peekable;

/// Longest key kept in the array.
const SHORT: usize = 23;

/// A key of at most [`SHORT`] bytes: the bytes, zero-padded to 23, then the length.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ShortKey([u8; SHORT + 1]);

impl ShortKey {
    /// The key, if it is short enough.
    fn new(key: &[u8]) -> Option<Self> {
        (key.len() <= SHORT).then(|| {
            let mut a = [0; SHORT + 1];
            a[..key.len()].copy_from_slice(key);
            a[SHORT] = key.len() as u8;
            ShortKey(a)
        })
    }

    fn bytes(&self) -> &[u8] {
        &self.0[..self.0[SHORT] as usize]
    }

    fn words(&self) -> (u64, u64, u64) {
        let word =
            |at: usize| u64::from_be_bytes(self.0[at..at + 8].try_into().expect("eight bytes"));
        (word(0), word(8), word(16))
    }
}

// Orders as the bytes do. Where one key is a prefix of the other, the shorter is padded with
// zeros where the other has bytes of at least zero, so it never compares greater; when the
// padded bytes are equal, the lengths (the last byte) put the shorter first.
impl Ord for ShortKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for ShortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&bytes::Bytes::copy_from_slice(self.bytes()), f)
    }
}

/// An ordered map from byte-string keys to `V`.
#[derive(Debug)]
pub(crate) struct KeyMap<V> {
    short: BTreeMap<ShortKey, V>,
    long: BTreeMap<Box<[u8]>, V>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            short: BTreeMap::new(),
            long: BTreeMap::new(),
        }
    }
}

/// A key's place in a [`KeyMap`].
pub(crate) enum Entry<'a, V> {
    /// The key is present.
    Occupied(&'a mut V),
    /// The key is absent.
    Vacant(Vacant<'a, V>),
}

/// An absent key's place.
pub(crate) enum Vacant<'a, V> {
    Short(btree_map::VacantEntry<'a, ShortKey, V>),
    Long(btree_map::VacantEntry<'a, Box<[u8]>, V>),
}

impl<'a, V> Vacant<'a, V> {
    /// Puts `value` under the key.
    pub(crate) fn insert(self, value: V) -> &'a mut V {
        match self {
            Vacant::Short(e) => e.insert(value),
            Vacant::Long(e) => e.insert(value),
        }
    }
}

impl<'a, V: Default> Entry<'a, V> {
    /// The value, inserting the default first if the key is absent.
    pub(crate) fn or_default(self) -> &'a mut V {
        match self {
            Entry::Occupied(v) => v,
            Entry::Vacant(e) => e.insert(V::default()),
        }
    }
}

impl<V> KeyMap<V> {
    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// True when no key is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.short.is_empty() && self.long.is_empty()
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        match ShortKey::new(key) {
            Some(k) => self.short.get(&k),
            None => self.long.get(key),
        }
    }

    /// The value under `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        match ShortKey::new(key) {
            Some(k) => self.short.get_mut(&k),
            None => self.long.get_mut(key),
        }
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        match ShortKey::new(key) {
            Some(k) => self.short.remove(&k),
            None => self.long.remove(key),
        }
    }

    /// The place of `key`, found with one search.
    pub(crate) fn entry(&mut self, key: &[u8]) -> Entry<'_, V> {
        match ShortKey::new(key) {
            Some(k) => match self.short.entry(k) {
                btree_map::Entry::Occupied(e) => Entry::Occupied(e.into_mut()),
                btree_map::Entry::Vacant(e) => Entry::Vacant(Vacant::Short(e)),
            },
            None => match self.long.entry(key.into()) {
                btree_map::Entry::Occupied(e) => Entry::Occupied(e.into_mut()),
                btree_map::Entry::Vacant(e) => Entry::Vacant(Vacant::Long(e)),
            },
        }
    }

    /// Every key and value, in the order of the keys' bytes.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        Iter {
            short: self.short.iter().peekable(),
            long: self.long.iter().peekable(),
        }
    }

    /// A map of `entries`, about `len` of them. Entries already in key order (a join's
    /// records) are built in one pass; of equal keys the last is kept.
    pub(crate) fn build<K: Borrow<[u8]>>(
        len: usize,
        entries: impl Iterator<Item = (K, V)>,
    ) -> Self {
        let mut short = Vec::with_capacity(len);
        let mut long = Vec::new();
        for (k, v) in entries {
            let k = k.borrow();
            match ShortKey::new(k) {
                Some(s) => short.push((s, v)),
                None => long.push((Box::from(k), v)),
            }
        }
        // Collecting a vector's own iterator reuses its allocation.
        KeyMap {
            short: short.into_iter().collect(),
            long: long.into_iter().collect(),
        }
    }
}

/// The entries of a [`KeyMap`] in key order: its two maps merged.
pub(crate) struct Iter<'a, V> {
    short: Peekable<btree_map::Iter<'a, ShortKey, V>>,
    long: Peekable<btree_map::Iter<'a, Box<[u8]>, V>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let short_first = match (self.short.peek(), self.long.peek()) {
            (Some((s, _)), Some((l, _))) => s.bytes() < &l[..],
            (Some(_), None) => true,
            (None, _) => false,
        };
        if short_first {
            self.short.next().map(|(k, v)| (k.bytes(), v))
        } else {
            self.long.next().map(|(k, v)| (&k[..], v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> Vec<Vec<u8>> {
        let mut c: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\0".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\x01".to_vec(),
            b"ab".to_vec(),
            b"\x09m12-345".to_vec(),
        ];
        for n in [22, 23, 24, 300] {
            c.push(vec![7; n]);
            c.push(vec![0; n]);
            c.push(vec![0xff; n]);
            let mut x = vec![7; n];
            x[n - 1] = 0;
            c.push(x);
        }
        c
    }

    #[test]
    fn short_keys_keep_their_bytes_and_order_as_slices() {
        for x in cases() {
            if let Some(k) = ShortKey::new(&x) {
                assert_eq!(k.bytes(), &x[..]);
            } else {
                assert!(x.len() > SHORT);
            }
        }
        for x in cases().iter().filter(|x| x.len() <= SHORT) {
            for y in cases().iter().filter(|y| y.len() <= SHORT) {
                let (a, b) = (ShortKey::new(x).unwrap(), ShortKey::new(y).unwrap());
                assert_eq!(a.cmp(&b), x.cmp(y), "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn short_and_long_keys_are_found_changed_removed_and_walked_in_byte_order() {
        let mut m = KeyMap::default();
        for (i, k) in cases().iter().enumerate() {
            match m.entry(k) {
                Entry::Vacant(e) => *e.insert(0) += i,
                Entry::Occupied(_) => panic!("{k:?} present before its insert"),
            }
        }
        assert_eq!(m.len(), cases().len());
        for (i, k) in cases().iter().enumerate() {
            assert_eq!(m.get(k), Some(&i));
            assert!(matches!(m.entry(k), Entry::Occupied(v) if *v == i));
        }
        *m.get_mut(&[7; 24]).unwrap() = 1000;
        assert_eq!(m.get(&[7; 24]), Some(&1000));
        let mut sorted = cases();
        sorted.sort();
        let walked: Vec<Vec<u8>> = m.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(walked, sorted);
        let built = KeyMap::build(0, cases().into_iter().map(|k| (k, 1)));
        let rebuilt: Vec<Vec<u8>> = built.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(rebuilt, sorted);
        assert_eq!(
            m.remove(&[0; 300]),
            Some(cases().iter().position(|k| k == &[0; 300]).unwrap())
        );
        assert_eq!(m.remove(b"a"), Some(2));
        assert_eq!(m.get(b"a"), None);
        assert_eq!(m.len(), cases().len() - 2);
        assert!(!m.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn keys_order_as_their_bytes(
            x in proptest::collection::vec(0u8..4, 0..30),
            y in proptest::collection::vec(0u8..4, 0..30),
        ) {
            let mut m = KeyMap::default();
            m.entry(&x).or_default();
            m.entry(&y).or_default();
            let walked: Vec<&[u8]> = m.iter().map(|(k, _): (&[u8], &u8)| k).collect();
            let mut expected = vec![&x[..], &y[..]];
            expected.sort();
            expected.dedup();
            proptest::prop_assert_eq!(walked, expected);
            if let (Some(a), Some(b)) = (ShortKey::new(&x), ShortKey::new(&y)) {
                proptest::prop_assert_eq!(a.cmp(&b), x.cmp(&y));
            }
        }
    }
}
