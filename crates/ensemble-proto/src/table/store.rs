//! The records of one table replica: a set (one value per key) or a bag (many values per key),
//! with a version per record so that writes applied in any order give the same contents.
//!
//! Deletes leave a tombstone (its version) for a while, so that an older insert arriving late
//! cannot bring the record back; tombstones are dropped after the table's `tombstone_ttl`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::blob::Blob;
use super::keys::{Entry, KeyMap};
use super::msg::{Op, Record, Version};

/// Set or bag semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// One value per key; an insert replaces.
    Set,
    /// Many distinct values per key; an insert adds.
    Bag,
}

/// A change of the contents, for subscribers: `old` and `new` are `None` when absent. A bag
/// reports one change per object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Bytes,
    /// The value before.
    pub old: Option<Bytes>,
    /// The value after.
    pub new: Option<Bytes>,
}

impl Change {
    /// A change of stored bytes, copied for subscribers.
    fn of(key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Self {
        Change {
            key: Bytes::copy_from_slice(key),
            old: old.map(Bytes::copy_from_slice),
            new: new.map(Bytes::copy_from_slice),
        }
    }
}

/// A snapshot cut in chunks, as joins send and receive it.
pub type Chunks = Vec<Vec<Record>>;

/// The records in `chunks`.
pub fn count(chunks: &[Vec<Record>]) -> u64 {
    chunks.iter().map(|c| c.len() as u64).sum()
}

/// What a record counts towards a join chunk's size: its key, its value and 24 bytes.
pub fn chunk_cost(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + 24
}

/// Bytes a record costs beyond its key and value (map node, version, bookkeeping).
pub(crate) const RECORD_OVERHEAD: usize = 64;

#[derive(Debug, Clone)]
struct Slot {
    value: Option<Blob>,
    version: Version,
}

#[derive(Debug, Clone, Default)]
struct BagSlot {
    /// Objects with a version up to this were deleted by a `Delete` of the key.
    cleared: Version,
    /// Object value -> (version, live).
    objects: BTreeMap<Blob, (Version, bool)>,
    live: usize,
}

/// The records of one replica.
#[derive(Debug)]
pub struct Store {
    kind: Kind,
    set: KeyMap<Slot>,
    bag: KeyMap<BagSlot>,
    live: usize,
    bytes: usize,
    clock: u64,
    /// (when, key, bag object or `None` for the key, version of the delete): a tombstone is
    /// collected only if nothing newer replaced it meanwhile.
    tombstones: VecDeque<(Instant, Blob, Option<Blob>, Version)>,
    /// Whether changes are reported (someone subscribed): building them costs a few
    /// allocations per record.
    pub watched: bool,
    /// XOR of the hashes of the live records (with their versions): equal digests mean equal
    /// contents, so a join needs one snapshot per distinct digest.
    digest: u64,
}

/// A record's share of [`Store::digest`]: XXH3 over key, value and version (a fixed,
/// platform-independent function, so every replica computes the same digest).
pub(crate) fn record_hash(key: &[u8], value: &[u8], version: Version) -> u64 {
    use xxhash_rust::xxh3::xxh3_64_with_seed;
    let seed = version.time ^ version.origin.rotate_left(32);
    // The key's hash seeds the value's: key and value boundaries cannot be confused.
    xxh3_64_with_seed(value, xxh3_64_with_seed(key, seed))
}

impl Kind {
    /// `set` or `bag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Bag => "bag",
        }
    }
}

impl Store {
    /// An empty store.
    pub fn new(kind: Kind) -> Self {
        Store {
            kind,
            set: KeyMap::default(),
            bag: KeyMap::default(),
            live: 0,
            bytes: 0,
            clock: 0,
            tombstones: VecDeque::new(),
            watched: false,
            digest: 0,
        }
    }

    /// Set or bag.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Live records (bag: objects).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no record is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A digest of the live records and their versions.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Estimated bytes the live records take.
    pub fn memory(&self) -> usize {
        self.bytes
    }

    /// The value under `key` (set), or the first of its values (bag).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match self.kind {
            Kind::Set => self.set.get(key).and_then(|s| s.value.as_deref()),
            Kind::Bag => self.bag.get(key).and_then(|b| {
                b.objects
                    .iter()
                    .find(|(_, (_, live))| *live)
                    .map(|(v, _)| &**v)
            }),
        }
    }

    /// Every live value under `key` (one at most for a set).
    pub fn get_all(&self, key: &[u8]) -> Vec<Bytes> {
        match self.kind {
            Kind::Set => self
                .get(key)
                .map(Bytes::copy_from_slice)
                .into_iter()
                .collect(),
            Kind::Bag => self
                .bag
                .get(key)
                .map(|b| {
                    b.objects
                        .iter()
                        .filter(|(_, (_, live))| *live)
                        .map(|(v, _)| Bytes::copy_from_slice(v))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Every live record, in key order.
    pub fn records(&self) -> Vec<Record> {
        self.chunks(usize::MAX).pop().unwrap_or_default()
    }

    /// Every live record, in key order, cut as a join sends them: a chunk ends with the
    /// record that brings it to `chunk_bytes` (counting [`chunk_cost`] per record).
    pub fn chunks(&self, chunk_bytes: usize) -> Chunks {
        // Every key and value is copied into one buffer, and records take slices of it: one
        // allocation for a snapshot instead of two per record. A join's time is mostly spent
        // faulting in fresh memory, so the first walk also counts each chunk's records and
        // the second makes them straight into chunks of that size: no other copy.
        let mut buf = Vec::with_capacity(self.bytes.saturating_sub(self.live * RECORD_OVERHEAD));
        let mut counts = Vec::new();
        let (mut n, mut size) = (0, 0usize);
        self.for_each(|key, value, _| {
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
            n += 1;
            size = size.saturating_add(chunk_cost(key, value));
            if size >= chunk_bytes {
                counts.push(std::mem::take(&mut n));
                size = 0;
            }
        });
        if n > 0 {
            counts.push(n);
        }
        let buf = Bytes::from(buf);
        let mut chunks = Vec::with_capacity(counts.len());
        let mut counts = counts.into_iter();
        let (mut chunk, mut want, mut at) = (Vec::new(), 0, 0);
        self.for_each(|key, value, version| {
            if chunk.is_empty() {
                want = counts.next().unwrap_or(1);
                chunk = Vec::with_capacity(want);
            }
            let (split, end) = (at + key.len(), at + key.len() + value.len());
            chunk.push(Record {
                key: buf.slice(at..split),
                value: buf.slice(split..end),
                version,
            });
            at = end;
            if chunk.len() == want {
                chunks.push(std::mem::take(&mut chunk));
            }
        });
        chunks
    }

    /// Calls `f` on every live record, in key order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8], Version)) {
        match self.kind {
            Kind::Set => {
                for (k, s) in self.set.iter() {
                    if let Some(v) = &s.value {
                        f(k, v, s.version);
                    }
                }
            }
            Kind::Bag => {
                for (k, b) in self.bag.iter() {
                    for (v, (version, live)) in &b.objects {
                        if *live {
                            f(k, v, *version);
                        }
                    }
                }
            }
        }
    }

    /// A new version for a write made here by `origin`.
    pub fn next_version(&mut self, origin: u64) -> Version {
        // Saturates rather than panics if a peer ever sent a time at the very end of the range.
        self.clock = self.clock.saturating_add(1);
        Version {
            time: self.clock,
            origin,
        }
    }

    /// Applies a write (made here or received); returns the changes it made. The store keeps
    /// copies of the op's key and value (inline when short), so the op's buffers are freed
    /// with the op.
    pub fn apply(&mut self, now: Instant, op: &Op, changes: &mut Vec<Change>) {
        let version = Self::see_version(&mut self.clock, op);
        match (self.kind, op) {
            (Kind::Set, Op::Insert { key, value, .. }) => {
                self.set_slot(now, key, Some(value), version, false, changes)
            }
            (Kind::Set, Op::Delete { key, .. }) => {
                self.set_slot(now, key, None, version, false, changes)
            }
            (Kind::Set, Op::DeleteObject { key, value, .. }) => {
                if self.get(key) == Some(&value[..]) {
                    self.set_slot(now, key, None, version, false, changes)
                }
            }
            (Kind::Bag, Op::Insert { key, value, .. }) => {
                self.bag_object(now, key, value, version, true, false, changes)
            }
            (Kind::Bag, Op::DeleteObject { key, value, .. }) => {
                self.bag_object(now, key, value, version, false, false, changes)
            }
            (Kind::Bag, Op::Delete { key, .. }) => self.bag_clear(now, key, version, changes),
        }
    }

    /// The op's version; the Lamport clock moves past it.
    fn see_version(clock: &mut u64, op: &Op) -> Version {
        let version = match op {
            Op::Insert { version, .. }
            | Op::Delete { version, .. }
            | Op::DeleteObject { version, .. } => *version,
        };
        *clock = (*clock).max(version.time);
        version
    }

    /// Writes a record a join decided on, over whatever this replica holds under its key.
    pub fn force(&mut self, now: Instant, r: &Record, changes: &mut Vec<Change>) {
        self.clock = self.clock.max(r.version.time);
        match self.kind {
            Kind::Set => self.set_slot(now, &r.key, Some(&r.value), r.version, true, changes),
            Kind::Bag => self.bag_object(now, &r.key, &r.value, r.version, true, true, changes),
        }
    }

    /// Writes the records a join decided on, as they arrived in chunks (in key order, as joins
    /// send them). An empty set replica, the usual case of a node joining, is built in one pass.
    pub fn force_all(&mut self, now: Instant, chunks: Chunks, changes: &mut Vec<Change>) {
        let records = || chunks.iter().flatten();
        let sorted = records().zip(records().skip(1)).all(|(a, b)| a.key < b.key);
        if self.kind == Kind::Set && self.set.is_empty() && sorted {
            let len = count(&chunks) as usize;
            if self.watched {
                changes.reserve(len);
            }
            for r in records() {
                self.clock = self.clock.max(r.version.time);
                self.digest ^= record_hash(&r.key, &r.value, r.version);
                self.live += 1;
                self.bytes += Self::cost(&r.key, &r.value);
                if self.watched {
                    changes.push(Change {
                        key: r.key.clone(),
                        old: None,
                        new: Some(r.value.clone()),
                    });
                }
            }
            let slots = records().map(|r| {
                let slot = Slot {
                    value: Some(Blob::from(&r.value[..])),
                    version: r.version,
                };
                (&r.key[..], slot)
            });
            self.set = KeyMap::build(len, slots);
            return;
        }
        for r in records() {
            self.force(now, r, changes);
        }
    }

    /// Drops tombstones older than `ttl`.
    pub fn collect_tombstones(&mut self, now: Instant, ttl: Duration) {
        while let Some((at, _, _, _)) = self.tombstones.front() {
            if now.saturating_duration_since(*at) < ttl {
                break;
            }
            let (_, key, object, version) = self.tombstones.pop_front().expect("front exists");
            match (self.kind, object) {
                (Kind::Set, _) => {
                    let same = |s: &Slot| s.value.is_none() && s.version == version;
                    if self.set.get(&key).is_some_and(same) {
                        self.set.remove(&key);
                    }
                }
                (Kind::Bag, Some(value)) => {
                    if let Some(b) = self.bag.get_mut(&key) {
                        if b.objects.get(&value) == Some(&(version, false)) {
                            b.objects.remove(&value);
                        }
                    }
                    self.drop_empty_bag_slot(&key);
                }
                (Kind::Bag, None) => {
                    // Only the newest clear of the key is forgotten by its own expiry.
                    if let Some(b) = self.bag.get_mut(&key) {
                        if b.cleared == version {
                            b.cleared = Version::default();
                        }
                    }
                    self.drop_empty_bag_slot(&key);
                }
            }
        }
    }

    /// Drops the slot of `key` once it holds no object and remembers no clear.
    fn drop_empty_bag_slot(&mut self, key: &[u8]) {
        let droppable = |b: &BagSlot| b.objects.is_empty() && b.cleared == Version::default();
        if self.bag.get(key).is_some_and(droppable) {
            self.bag.remove(key);
        }
    }

    fn cost(key: &[u8], value: &[u8]) -> usize {
        key.len() + value.len() + RECORD_OVERHEAD
    }

    fn set_slot(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
        version: Version,
        force: bool,
        changes: &mut Vec<Change>,
    ) {
        let slot = Slot {
            value: value.map(Blob::from),
            version,
        };
        let old = match self.set.entry(key) {
            Entry::Occupied(s) if s.version >= version && !force => return,
            Entry::Occupied(s) => {
                let old = std::mem::replace(s, slot);
                old.value.inspect(|o| {
                    self.live -= 1;
                    self.bytes -= Self::cost(key, o);
                    self.digest ^= record_hash(key, o, old.version);
                })
            }
            Entry::Vacant(e) => {
                e.insert(slot);
                None
            }
        };
        if let Some(v) = value {
            self.live += 1;
            self.bytes += Self::cost(key, v);
            self.digest ^= record_hash(key, v, version);
        } else {
            self.tombstones
                .push_back((now, Blob::from(key), None, version));
        }
        if self.watched && old.as_deref() != value {
            changes.push(Change::of(key, old.as_deref(), value));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bag_object(
        &mut self,
        now: Instant,
        key: &[u8],
        value: &[u8],
        version: Version,
        live: bool,
        force: bool,
        changes: &mut Vec<Change>,
    ) {
        let slot = self.bag.entry(key).or_default();
        if !force && version <= slot.cleared {
            return;
        }
        let (was, was_version) = match slot.objects.get(value) {
            Some((v, _)) if *v >= version && !force => return,
            Some((v, l)) => (*l, *v),
            None => (false, Version::default()),
        };
        slot.objects.insert(Blob::from(value), (version, live));
        if was {
            self.digest ^= record_hash(key, value, was_version);
        }
        if live {
            self.digest ^= record_hash(key, value, version);
        }
        match (was, live) {
            (false, true) => {
                slot.live += 1;
                self.live += 1;
                self.bytes += Self::cost(key, value);
                if self.watched {
                    changes.push(Change::of(key, None, Some(value)));
                }
            }
            (true, false) => {
                slot.live -= 1;
                self.live -= 1;
                self.bytes -= Self::cost(key, value);
                if self.watched {
                    changes.push(Change::of(key, Some(value), None));
                }
            }
            _ => {}
        }
        if !live {
            self.tombstones
                .push_back((now, Blob::from(key), Some(Blob::from(value)), version));
        }
    }

    fn bag_clear(&mut self, now: Instant, key: &[u8], version: Version, changes: &mut Vec<Change>) {
        let slot = self.bag.entry(key).or_default();
        if version <= slot.cleared {
            return;
        }
        slot.cleared = version;
        let gone: Vec<Blob> = slot
            .objects
            .iter()
            .filter(|(_, (v, _))| *v < version)
            .map(|(value, _)| value.clone())
            .collect();
        for value in gone {
            let (was_version, live) = slot.objects.remove(&value).expect("listed");
            if live {
                self.digest ^= record_hash(key, &value, was_version);
                slot.live -= 1;
                self.live -= 1;
                self.bytes -= Self::cost(key, &value);
                if self.watched {
                    changes.push(Change::of(key, Some(&value), None));
                }
            }
        }
        self.tombstones
            .push_back((now, Blob::from(key), None, version));
    }
}
