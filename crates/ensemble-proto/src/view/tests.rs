//! Unit and property tests of the membership view.

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
    view.members().map(|m| (**m).clone()).collect()
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
        let forward = merged(now, &[&a]);
        a.reverse();
        let backward = merged(now, &[&a]);
        prop_assert_eq!(state(&forward), state(&backward));
        // The incrementally kept digest and counts agree too.
        prop_assert_eq!(forward.digest(), backward.digest());
        prop_assert_eq!(forward.up_count(), backward.up_count());
    }

    #[test]
    fn digest_and_counts_match_a_fresh_computation(a in prop::collection::vec(arb_member(), 0..16)) {
        let now = Instant::now();
        let v = merged(now, &[&a]);
        let fresh = merged(now, &[&state(&v)]);
        prop_assert_eq!(v.digest(), fresh.digest());
        prop_assert_eq!(v.bucket_digests(), fresh.bucket_digests());
        for b in 0..BUCKETS {
            prop_assert_eq!(v.fine_digests(b), fresh.fine_digests(b));
        }
        let in_buckets: usize = (0..BUCKETS).map(|b| v.bucket(b).count()).sum();
        for b in 0..BUCKETS {
            let fine = v.fine_digests(b).iter().fold(0u32, |a, d| a.wrapping_add(*d));
            prop_assert_eq!(fine, v.bucket_digests()[b] as u32);
            let in_fine: usize = (b * FINE..(b + 1) * FINE).map(|f| v.fine_range(f).count()).sum();
            prop_assert_eq!(in_fine, v.bucket(b).count());
        }
        prop_assert_eq!(in_buckets, v.len());
        let footprint: usize = v.members().map(|m| footprint_of(m)).sum();
        prop_assert_eq!(v.footprint(), footprint);
        let up = v.members().filter(|m| m.status.is_up()).count();
        prop_assert_eq!(v.up_count(), up);
        prop_assert_eq!(v.tombstone_count(), v.len() - up);
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
    let before = v.digest();
    assert!(v.collect_garbage(t0 + ttl / 2, ttl, "me").is_empty());
    let dropped = v.collect_garbage(t0 + ttl, ttl, "me");
    assert_eq!(dropped.len(), 2);
    assert_eq!(v.len(), 2);
    assert!(v.get("up").is_some() && v.get("gone").is_none());
    assert_ne!(before, v.digest());
    assert_eq!(v.tombstone_count(), 0);
}

#[test]
fn every_version_of_a_member_has_its_own_digest() {
    let now = Instant::now();
    let statuses = [Status::Alive, Status::Suspect, Status::Down, Status::Left];
    let mut seen = std::collections::HashMap::new();
    for incarnation in 1_000_000..1_000_010 {
        for status in statuses {
            let mut v = View::new();
            v.merge(now, member("n3", incarnation, status, 1));
            let before = seen.insert(v.digest(), (incarnation, status));
            assert_eq!(before, None, "{incarnation} {status:?} collides");
        }
    }
}

#[test]
fn names_sharing_a_ring_position_keep_apart_in_name_order() {
    let m = |name: &str, inc| Arc::new(member(name, inc, Status::Alive, 1));
    let mut slot = Slot::One(m("b", 1));
    slot.put(m("a", 1));
    slot.put(m("c", 1));
    slot.put(m("b", 2));
    let names: Vec<&str> = slot.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(slot.get("b").unwrap().incarnation, 2);
    assert!(slot.get("d").is_none());
    assert_eq!(slot.take("b"), (Some(m("b", 2)), false));
    assert_eq!(slot.take("a").0.unwrap().name, "a");
    assert!(matches!(slot, Slot::One(_)));
    assert_eq!(slot.take("x"), (None, false));
    assert!(slot.take("c").1, "the last one empties the slot");
}

#[test]
fn walking_the_ring_visits_everyone_once_in_order() {
    let now = Instant::now();
    let mut v = View::new();
    for i in 0..50 {
        v.merge(now, member(&format!("n{i}"), 1, Status::Alive, i));
    }
    let from = position("n7");
    let cw: Vec<u64> = v.walk(from, true).map(|m| position(&m.name)).collect();
    assert_eq!(cw.len(), 50);
    assert_eq!(cw[0], from, "clockwise starts at the position itself");
    let ccw: Vec<u64> = v.walk(from, false).map(|m| position(&m.name)).collect();
    assert_eq!(ccw.len(), 50);
    assert_eq!(*ccw.last().unwrap(), from, "counter-clockwise ends there");
    assert!(ccw[0] != from);
    assert!(position("node1") != position("node2"));
}

#[test]
fn walks_match_the_sorted_ring_from_every_start() {
    let now = Instant::now();
    let mut v = View::new();
    for i in 0..300 {
        v.merge(now, member(&format!("n{i}"), 1, Status::Alive, i));
    }
    let mut ring: Vec<u64> = (0..300).map(|i| position(&format!("n{i}"))).collect();
    ring.sort();
    for from in [0, 1, u64::MAX, ring[7], ring[7] + 1, ring[299], 1 << 63] {
        let at = ring.partition_point(|p| *p < from);
        let cw: Vec<u64> = ring[at..].iter().chain(&ring[..at]).copied().collect();
        let walked: Vec<u64> = v.walk(from, true).map(|m| position(&m.name)).collect();
        assert_eq!(walked, cw, "clockwise from {from}");
        let ccw: Vec<u64> = cw.iter().rev().copied().collect();
        let walked: Vec<u64> = v.walk(from, false).map(|m| position(&m.name)).collect();
        assert_eq!(walked, ccw, "counter-clockwise from {from}");
    }
}

#[test]
fn a_clone_shares_its_buckets_until_one_changes() {
    let now = Instant::now();
    let mut v = View::new();
    for i in 0..500 {
        v.merge(now, member(&format!("n{i}"), 1, Status::Alive, i));
    }
    let mut copy = v.clone();
    assert_eq!(copy.shared_buckets(), BUCKETS);
    copy.merge(now, member("n3", 2, Status::Suspect, 3));
    assert_eq!(
        copy.shared_buckets(),
        BUCKETS - 1,
        "only n3's bucket is copied"
    );
    assert_eq!(
        v.get("n3").unwrap().incarnation,
        1,
        "the original is untouched"
    );
    assert_eq!(copy.get("n3").unwrap().status, Status::Suspect);
    assert_ne!(v.digest(), copy.digest());
    let b = bucket_of(position("n3"));
    assert_ne!(v.fine_digests(b), copy.fine_digests(b));
    drop(v);
    assert_eq!(copy.shared_buckets(), 0);
}
