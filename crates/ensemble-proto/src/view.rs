//! The membership view: a state-based CRDT of members keyed by name.
//!
//! Merging keeps, per name, the version with the highest precedence (incarnation, then status),
//! so merge is commutative, associative and idempotent. A member that left or went down keeps a
//! tombstone until [`View::collect_garbage`] drops it, so stale gossip cannot re-add it.
//!
//! Entries are ordered by ring position (a stable hash of the name), so the overlay finds ring
//! neighbours with range queries on the view itself, and held as `Arc<Member>` so that one
//! version of a member is one allocation however many messages and views hold it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::member::{Member, Status};

/// A change a merge made to the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The version held before, if the member was known.
    pub old: Option<Arc<Member>>,
    /// The version held now.
    pub new: Arc<Member>,
}

/// Position of a name on the ring: FNV-1a, finished with a 64-bit mixer so that similar names
/// (`node1`, `node2`) land far apart. Stable across builds and platforms.
pub fn position(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Contribution of one member version to the view digest.
fn digest_of(m: &Member) -> u64 {
    let status = match m.status {
        Status::Alive => 0,
        Status::Suspect => 1,
        Status::Down => 2,
        Status::Left => 3,
    };
    // One number per (incarnation, status): incarnations stay below 2^62. (Adding the two
    // made `down` at n and `alive` at n + 2 look the same, so anti-entropy never repaired it.)
    mix(position(&m.name) ^ mix(m.incarnation << 2 | status))
}

/// Number of digest buckets: the ring is cut into this many equal ranges of positions, and
/// anti-entropy compares (and repairs) each range on its own.
pub const BUCKETS: usize = 64;

/// The digest bucket of a ring position.
pub fn bucket_of(pos: u64) -> usize {
    (pos >> (64 - BUCKETS.trailing_zeros())) as usize
}

/// Fine digest ranges per bucket: a large view compares the buckets that differ range by
/// finer range, and sends only the members of the fine ranges that differ.
pub const FINE: usize = 64;

/// The fine range of a ring position, from 0 to `BUCKETS * FINE - 1`; fine ranges `b * FINE`
/// to `b * FINE + FINE - 1` make up bucket `b`.
pub fn fine_of(pos: u64) -> usize {
    (pos >> (64 - (BUCKETS * FINE).trailing_zeros())) as usize
}

/// Estimated bytes one held member takes: the version, its name, its tags, and map overhead.
fn footprint_of(m: &Member) -> usize {
    let tags: usize = m
        .tags
        .as_map()
        .iter()
        .map(|(k, v)| k.len() + v.len() + 48)
        .sum();
    std::mem::size_of::<Member>() + m.name.len() + tags + 64
}

/// Ring key of a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Ring position of the name.
    pub pos: u64,
    /// The name (breaks ties between positions).
    pub name: Arc<str>,
}

/// The members at one ring position: almost always one. Two names whose 64-bit positions
/// collide share a slot, kept in name order.
#[derive(Debug, Clone)]
enum Slot {
    One(Arc<Member>),
    // A thin pointer keeps a slot at 16 bytes (a `Vec` or a boxed slice would make it 24+).
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Arc<Member>>>),
}

impl Slot {
    fn iter(&self) -> std::slice::Iter<'_, Arc<Member>> {
        match self {
            Slot::One(m) => std::slice::from_ref(m).iter(),
            Slot::Many(ms) => ms.iter(),
        }
    }

    fn get(&self, name: &str) -> Option<&Arc<Member>> {
        self.iter().find(|m| m.name == name)
    }

    /// Puts `member` in place of the version of its name, or beside the others.
    fn put(&mut self, member: Arc<Member>) {
        match self {
            Slot::One(m) if m.name == member.name => *m = member,
            Slot::One(m) => {
                let mut all = vec![m.clone(), member];
                all.sort_by(|a, b| a.name.cmp(&b.name));
                *self = Slot::Many(Box::new(all));
            }
            Slot::Many(ms) => match ms.binary_search_by(|m| m.name.cmp(&member.name)) {
                Ok(i) => ms[i] = member,
                Err(i) => ms.insert(i, member),
            },
        }
    }

    /// Removes the version of `name`; returns it and whether the slot is now empty.
    fn take(&mut self, name: &str) -> (Option<Arc<Member>>, bool) {
        match self {
            Slot::One(m) if m.name == name => (Some(m.clone()), true),
            Slot::One(_) => (None, false),
            Slot::Many(ms) => {
                let taken = ms.iter().position(|m| m.name == name).map(|i| ms.remove(i));
                if ms.len() == 1 {
                    *self = Slot::One(ms[0].clone());
                }
                (taken, false)
            }
        }
    }
}

/// The members of one digest bucket and the hashes of its fine ranges: the unit of sharing
/// between views (see [`View`]).
#[derive(Debug, Clone)]
struct Chunk {
    entries: BTreeMap<u64, Slot>,
    /// Per fine range of the bucket, the order-independent hash of the held versions,
    /// truncated to 32 bits (the bucket's 64-bit hash says whether anything differs; these
    /// only say where).
    fine: [u32; FINE],
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            entries: BTreeMap::new(),
            fine: [0; FINE],
        }
    }
}

/// The set of members one node knows, with their latest known versions.
///
/// Held as one map entry per ring position (no copy of the name), cut into the [`BUCKETS`]
/// digest buckets, each behind an `Arc`: cloning a view is cheap and the clone shares every
/// bucket with the original until one of them changes it, when that bucket alone is copied.
/// A simulated cluster of n nodes started from one formed view holds about n entries, plus a
/// copy of each bucket that a node changed, instead of n^2.
#[derive(Debug, Clone)]
pub struct View {
    chunks: [Arc<Chunk>; BUCKETS],
    len: usize,
    /// When each `down` or `left` entry last changed (for garbage collection).
    tombstones: BTreeMap<Key, Instant>,
    version: u64,
    up: usize,
    /// Per-bucket order-independent hashes of the held versions.
    buckets: [u64; BUCKETS],
    /// Sum of the held members' estimated sizes, kept up to date by every change.
    footprint: usize,
}

impl Default for View {
    fn default() -> Self {
        let empty = Arc::new(Chunk::default());
        View {
            chunks: std::array::from_fn(|_| empty.clone()),
            len: 0,
            tombstones: BTreeMap::new(),
            version: 0,
            up: 0,
            buckets: [0; BUCKETS],
            footprint: 0,
        }
    }
}

impl View {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self, pos: u64) -> Option<&Slot> {
        self.chunks[bucket_of(pos)].entries.get(&pos)
    }

    /// Merges one member version; returns the transition if it won over what was held.
    pub fn merge(&mut self, now: Instant, member: impl Into<Arc<Member>>) -> Option<Transition> {
        let member: Arc<Member> = member.into();
        let pos = position(&member.name);
        let old = match self.slot(pos).and_then(|s| s.get(&member.name)) {
            Some(held) if !member.supersedes(held) => return None,
            held => held.cloned(),
        };
        self.version += 1;
        if let Some(o) = &old {
            self.add_digest(pos, o, false);
            self.up -= usize::from(o.status.is_up());
            self.footprint -= footprint_of(o);
        } else {
            self.len += 1;
        }
        self.add_digest(pos, &member, true);
        self.footprint += footprint_of(&member);
        self.up += usize::from(member.status.is_up());
        let was_tombstone = old.as_ref().is_some_and(|o| !o.status.is_up());
        if member.status.is_up() {
            if was_tombstone {
                self.tombstones.remove(&Self::key(pos, &member.name));
            }
        } else {
            self.tombstones.insert(Self::key(pos, &member.name), now);
        }
        let chunk = Arc::make_mut(&mut self.chunks[bucket_of(pos)]);
        match chunk.entries.get_mut(&pos) {
            Some(slot) => slot.put(member.clone()),
            None => {
                chunk.entries.insert(pos, Slot::One(member.clone()));
            }
        }
        Some(Transition { old, new: member })
    }

    /// Adds a version's hash to (or takes it from) its bucket and fine range.
    fn add_digest(&mut self, pos: u64, m: &Member, add: bool) {
        let d = digest_of(m);
        let b = bucket_of(pos);
        let chunk = Arc::make_mut(&mut self.chunks[b]);
        let (bucket, fine) = (&mut self.buckets[b], &mut chunk.fine[fine_of(pos) % FINE]);
        if add {
            *bucket = bucket.wrapping_add(d);
            *fine = fine.wrapping_add(d as u32);
        } else {
            *bucket = bucket.wrapping_sub(d);
            *fine = fine.wrapping_sub(d as u32);
        }
    }

    fn key(pos: u64, name: &str) -> Key {
        Key {
            pos,
            name: Arc::from(name),
        }
    }

    /// The held version of a member.
    pub fn get(&self, name: &str) -> Option<&Arc<Member>> {
        self.slot(position(name))?.get(name)
    }

    /// All held members, tombstones included, in ring order.
    pub fn members(&self) -> impl Iterator<Item = &Arc<Member>> {
        self.chunks
            .iter()
            .flat_map(|c| c.entries.values())
            .flat_map(Slot::iter)
    }

    /// Members from ring position `pos` on, going round the ring once (clockwise), or from
    /// just before it backwards (counter-clockwise).
    pub fn walk(&self, pos: u64, clockwise: bool) -> Box<dyn Iterator<Item = &Arc<Member>> + '_> {
        let b = bucket_of(pos);
        let here = &self.chunks[b].entries;
        let (after, before) = (self.chunks[b + 1..].iter(), self.chunks[..b].iter());
        if clockwise {
            let others = after.chain(before).flat_map(|c| c.entries.iter());
            let slots = here.range(pos..).chain(others).chain(here.range(..pos));
            Box::new(slots.flat_map(|(_, s)| s.iter()))
        } else {
            let others = before.rev().chain(after.rev());
            let others = others.flat_map(|c| c.entries.iter().rev());
            let slots = here.range(..pos).rev().chain(others);
            let slots = slots.chain(here.range(pos..).rev());
            Box::new(slots.flat_map(|(_, s)| s.iter().rev()))
        }
    }

    /// Tombstoned members (`down` and `left`) from ring position `pos` on, clockwise, once round.
    pub fn tombstones_from(&self, pos: u64) -> impl Iterator<Item = &Arc<Member>> + '_ {
        let at = Key {
            pos,
            name: Arc::from(""),
        };
        let after = self
            .tombstones
            .range((Bound::Included(at.clone()), Bound::Unbounded));
        let before = self
            .tombstones
            .range((Bound::Unbounded, Bound::Excluded(at)));
        after
            .chain(before)
            .filter_map(|(k, _)| self.slot(k.pos)?.get(&k.name))
    }

    /// Number of held members, tombstones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of held members that are `alive` or `suspect`.
    pub fn up_count(&self) -> usize {
        self.up
    }

    /// Estimated bytes the held members take (see [`Membership::estimated_bytes`]), kept up to
    /// date by every change. It counts every member in full, shared with other views or not.
    ///
    /// [`Membership::estimated_bytes`]: crate::Membership::estimated_bytes
    pub fn footprint(&self) -> usize {
        self.footprint
    }

    /// Number of held tombstones (`down` and `left` members).
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// An order-independent hash of every held version: two views with the same digest hold the
    /// same versions (with overwhelming probability). Maintained at every change.
    pub fn digest(&self) -> u64 {
        self.buckets.iter().fold(0, |a, b| a.wrapping_add(*b))
    }

    /// The digest of each bucket (see [`BUCKETS`]).
    pub fn bucket_digests(&self) -> &[u64; BUCKETS] {
        &self.buckets
    }

    /// The members whose ring position falls in bucket `b`.
    pub fn bucket(&self, b: usize) -> impl Iterator<Item = &Arc<Member>> + '_ {
        self.chunks[b].entries.values().flat_map(Slot::iter)
    }

    /// The hashes of bucket `b`'s fine ranges (see [`FINE`]).
    pub fn fine_digests(&self, b: usize) -> &[u32] {
        &self.chunks[b].fine
    }

    /// The members whose ring position falls in fine range `f` (see [`fine_of`]).
    pub fn fine_range(&self, f: usize) -> impl Iterator<Item = &Arc<Member>> + '_ {
        let width = 1u64 << (64 - (BUCKETS * FINE).trailing_zeros());
        self.chunks[f / FINE]
            .entries
            .range((f as u64).wrapping_mul(width)..)
            .take_while(move |(pos, _)| fine_of(**pos) == f)
            .flat_map(|(_, s)| s.iter())
    }

    /// True if no member is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows by one at every change; lets callers skip work when nothing changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many of the digest buckets this view holds are shared with another view (a
    /// clone), not copied yet.
    pub fn shared_buckets(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| Arc::strong_count(c) > 1)
            .count()
    }

    /// Drops tombstones (`down` and `left` members) unchanged for at least `ttl`, except
    /// `keep`. Returns the dropped members.
    pub fn collect_garbage(&mut self, now: Instant, ttl: Duration, keep: &str) -> Vec<Arc<Member>> {
        let expired: Vec<Key> = self
            .tombstones
            .iter()
            .filter(|(k, at)| &*k.name != keep && now.saturating_duration_since(**at) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        if !expired.is_empty() {
            self.version += 1;
        }
        let mut dropped = Vec::with_capacity(expired.len());
        for k in expired {
            self.tombstones.remove(&k);
            if self.slot(k.pos).is_none() {
                continue;
            }
            let entries = &mut Arc::make_mut(&mut self.chunks[bucket_of(k.pos)]).entries;
            let Some(slot) = entries.get_mut(&k.pos) else {
                continue;
            };
            let (taken, empty) = slot.take(&k.name);
            if empty {
                entries.remove(&k.pos);
            }
            if let Some(m) = taken {
                self.len -= 1;
                self.add_digest(k.pos, &m, false);
                self.footprint -= footprint_of(&m);
                dropped.push(m);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests;
