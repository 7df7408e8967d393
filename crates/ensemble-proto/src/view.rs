//! The membership view: a state-based CRDT of members keyed by name.
//!
//! Merging keeps, per name, the version with the highest precedence (incarnation, then status),
//! so merge is commutative, associative and idempotent. A member that left or went down keeps a
//! tombstone until [`View::collect_garbage`] drops it, so stale gossip cannot re-add it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::member::Member;

/// A change a merge made to the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The version held before, if the member was known.
    pub old: Option<Member>,
    /// The version held now.
    pub new: Member,
}

#[derive(Debug, Clone)]
struct Entry {
    member: Member,
    /// When this node last changed the entry (for tombstone garbage collection).
    changed_at: Instant,
}

/// The set of members one node knows, with their latest known versions.
#[derive(Debug, Clone, Default)]
pub struct View {
    entries: BTreeMap<String, Entry>,
    version: u64,
    /// Members that are `alive` or `suspect`, kept up to date by every change.
    up: usize,
}

impl View {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges one member version; returns the transition if it won over what was held.
    pub fn merge(&mut self, now: Instant, member: Member) -> Option<Transition> {
        let old = match self.entries.get(&member.name) {
            Some(held) if !member.supersedes(&held.member) => return None,
            Some(held) => Some(held.member.clone()),
            None => None,
        };
        self.version += 1;
        let was_up = old.as_ref().is_some_and(|o| o.status.is_up());
        self.up = self.up + usize::from(member.status.is_up()) - usize::from(was_up);
        self.entries.insert(
            member.name.clone(),
            Entry {
                member: member.clone(),
                changed_at: now,
            },
        );
        Some(Transition { old, new: member })
    }

    /// The held version of a member.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.entries.get(name).map(|e| &e.member)
    }

    /// All held members, tombstones included, in name order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.entries.values().map(|e| &e.member)
    }

    /// Number of held members, tombstones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of held members that are `alive` or `suspect`.
    pub fn up_count(&self) -> usize {
        self.up
    }

    /// True if no member is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Grows by one at every change; lets callers skip work when nothing changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Drops tombstones (`down` and `left` members) unchanged for at least `ttl`, except
    /// `keep`. Returns the dropped members.
    pub fn collect_garbage(&mut self, now: Instant, ttl: Duration, keep: &str) -> Vec<Member> {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, e)| {
                name.as_str() != keep
                    && !e.member.status.is_up()
                    && now.saturating_duration_since(e.changed_at) >= ttl
            })
            .map(|(name, _)| name.clone())
            .collect();
        if !expired.is_empty() {
            self.version += 1;
        }
        expired
            .into_iter()
            .filter_map(|name| self.entries.remove(&name).map(|e| e.member))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Status, Tags};
    use proptest::prelude::*;

    fn member(name: &str, incarnation: u64, status: Status, port: u16) -> Member {
        Member {
            name: name.into(),
            addr: ([127, 0, 0, 1], port).into(),
            incarnation,
            status,
            tags: Tags::default(),
        }
    }

    fn arb_member() -> impl Strategy<Value = Member> {
        let status = prop_oneof![
            Just(Status::Alive),
            Just(Status::Suspect),
            Just(Status::Down),
            Just(Status::Left)
        ];
        ("[abc]", 0u64..4, status, 1u16..3).prop_map(|(n, i, s, p)| member(&n, i, s, p))
    }

    fn state(view: &View) -> Vec<Member> {
        view.members().cloned().collect()
    }

    fn merged(now: Instant, parts: &[&[Member]]) -> View {
        let mut v = View::new();
        for part in parts {
            for m in part.iter() {
                v.merge(now, m.clone());
            }
        }
        v
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in prop::collection::vec(arb_member(), 0..12),
                                b in prop::collection::vec(arb_member(), 0..12)) {
            let now = Instant::now();
            prop_assert_eq!(state(&merged(now, &[&a, &b])), state(&merged(now, &[&b, &a])));
        }

        #[test]
        fn merge_is_associative(a in prop::collection::vec(arb_member(), 0..8),
                                b in prop::collection::vec(arb_member(), 0..8),
                                c in prop::collection::vec(arb_member(), 0..8)) {
            let now = Instant::now();
            // (a ∪ b) ∪ c == a ∪ (b ∪ c), merging whole states.
            let ab = state(&merged(now, &[&a, &b]));
            let bc = state(&merged(now, &[&b, &c]));
            prop_assert_eq!(state(&merged(now, &[&ab, &c])), state(&merged(now, &[&a, &bc])));
        }

        #[test]
        fn merge_is_idempotent(a in prop::collection::vec(arb_member(), 0..12)) {
            let now = Instant::now();
            let once = merged(now, &[&a]);
            let mut twice = once.clone();
            for m in state(&once) {
                prop_assert!(twice.merge(now, m).is_none());
            }
            prop_assert_eq!(state(&once), state(&twice));
        }

        #[test]
        fn order_of_single_updates_does_not_matter(mut a in prop::collection::vec(arb_member(), 0..12)) {
            let now = Instant::now();
            let forward = state(&merged(now, &[&a]));
            a.reverse();
            prop_assert_eq!(forward, state(&merged(now, &[&a])));
        }
    }

    #[test]
    fn stale_gossip_never_re_adds_a_left_member() {
        let now = Instant::now();
        let mut v = View::new();
        v.merge(now, member("a", 3, Status::Alive, 1));
        v.merge(now, member("a", 3, Status::Left, 1));
        assert!(v.merge(now, member("a", 3, Status::Alive, 1)).is_none());
        assert!(v.merge(now, member("a", 2, Status::Alive, 1)).is_none());
        assert_eq!(v.get("a").unwrap().status, Status::Left);
        // Only a new incarnation (a restart) brings it back.
        assert!(v.merge(now, member("a", 4, Status::Alive, 1)).is_some());
    }

    #[test]
    fn tombstones_are_collected_after_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut v = View::new();
        v.merge(t0, member("me", 1, Status::Alive, 1));
        v.merge(t0, member("up", 1, Status::Alive, 2));
        v.merge(t0, member("gone", 1, Status::Left, 3));
        v.merge(t0, member("dead", 1, Status::Down, 4));
        assert!(v.collect_garbage(t0 + ttl / 2, ttl, "me").is_empty());
        let dropped = v.collect_garbage(t0 + ttl, ttl, "me");
        assert_eq!(dropped.len(), 2);
        assert_eq!(v.len(), 2);
        assert!(v.get("up").is_some());
    }
}
