use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::effects::Completion;
use super::join::{diff, union, Join, SegmentView, Stage};
use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn v(time: u64, origin: u64) -> Version {
    Version { time, origin }
}

/// A node's tables driven through [`Tables::handle`], one input per call, in the shape of
/// calls: a command refused at once returns its error.
struct Node(Tables);

impl std::ops::Deref for Node {
    type Target = Tables;
    fn deref(&self) -> &Tables {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Tables {
        &mut self.0
    }
}

/// The token commands answered at once use here.
const CALL: u64 = u64::MAX;

impl Node {
    fn new(me: &str, config: TableConfig, seed: u64) -> Node {
        Node(Tables::new(me.into(), config, seed))
    }

    /// The error of a command refused at once (an unknown table, a record over the limits),
    /// taken out of the outputs; an operation that fails later answers in the outputs.
    fn refused(&mut self, token: u64) -> Result<(), TableError> {
        let at_once = |r: &Result<Reply, TableError>| {
            matches!(
                r,
                Err(TableError::Unknown(_) | TableError::TooLarge { .. } | TableError::Full { .. })
            )
        };
        match self.0.take_done(token, at_once) {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn create(
        &mut self,
        table: &str,
        spec: TableSpec,
    ) -> Result<Arc<std::sync::RwLock<Store>>, TableError> {
        let input = Input::Create {
            token: CALL,
            table: table.into(),
            spec,
        };
        self.0.handle(Instant::now(), input);
        let answer = self.0.take_done(CALL, |_| true).expect("answered at once");
        answer.map(|_| self.0.store(table).expect("created"))
    }

    fn write(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        ops: Vec<WriteOp>,
    ) -> Result<(), TableError> {
        let table = table.into();
        self.0.handle(now, Input::Write { token, table, ops });
        self.refused(token)
    }

    fn leader(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        op: LeaderOp,
        deadline: Instant,
    ) -> Result<(), TableError> {
        let table = table.into();
        let input = Input::Leader {
            token,
            table,
            op,
            deadline,
        };
        self.0.handle(now, input);
        self.refused(token)
    }

    fn ping_all(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        deadline: Instant,
    ) -> Result<(), TableError> {
        let table = table.into();
        let input = Input::PingAll {
            token,
            table,
            deadline,
        };
        self.0.handle(now, input);
        self.refused(token)
    }

    fn join(
        &mut self,
        now: Instant,
        table: &str,
        node: &str,
        token: u64,
        deadline: Instant,
    ) -> Result<(), TableError> {
        let input = Input::Join {
            token,
            table: table.into(),
            node: node.into(),
            deadline,
        };
        self.0.handle(now, input);
        self.refused(token)
    }

    fn settle(&mut self, now: Instant) {
        self.0.handle(now, Input::Settle);
    }

    fn peer_up(&mut self, now: Instant, peer: &str) {
        self.0.handle(now, Input::PeerUp(peer.into()));
    }

    fn member_down(&mut self, now: Instant, node: &str) {
        self.0.handle(now, Input::MemberDown(node.into()));
    }

    fn handle_message(&mut self, now: Instant, from: &str, msg: TableMsg) {
        let from = from.into();
        self.0.handle(now, Input::Message { from, msg });
    }

    fn tick(&mut self, now: Instant) {
        self.0.handle(now, Input::Tick);
    }
}

fn outputs(t: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| t.poll_output()).collect()
}

fn sends(outs: &[Output]) -> Vec<(&str, &TableMsg)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } => Some((to.as_str(), msg)),
            _ => None,
        })
        .collect()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec!["a", "b", "c"]).prop_map(b);
    let value = prop::sample::select(vec!["1", "2", "3"]).prop_map(b);
    let version = || (1u64..20, 0u64..3).prop_map(|(t, o)| v(t, o)).boxed();
    prop_oneof![
        (key.clone(), value.clone(), version()).prop_map(|(key, value, version)| Op::Insert {
            key,
            value,
            version
        }),
        (key.clone(), version()).prop_map(|(key, version)| Op::Delete { key, version }),
        (key, value, version()).prop_map(|(key, value, version)| Op::DeleteObject {
            key,
            value,
            version
        }),
    ]
}

fn apply_all(kind: Kind, ops: &[Op]) -> (Vec<Record>, u64) {
    let now = Instant::now();
    let mut s = Store::new(kind);
    for op in ops {
        s.apply(now, op, &mut Vec::new());
    }
    let records = s.records();
    // The digest kept incrementally is the digest of the records.
    let fresh = records.iter().fold(0, |d, r| {
        d ^ store::record_hash(&r.key, &r.value, r.version)
    });
    assert_eq!(s.digest(), fresh);
    (records, s.digest())
}

proptest! {
    /// Distinct versions (as every write has) make the order of delivery irrelevant.
    #[test]
    fn replicas_applying_the_same_writes_in_any_order_agree(
        ops in prop::collection::vec(op_strategy(), 0..30),
        seed in any::<u64>(),
    ) {
        let mut seen = BTreeSet::new();
        let ops: Vec<Op> = ops.into_iter().filter(|op| {
            let ver = match op { Op::Insert { version, .. } | Op::Delete { version, .. } | Op::DeleteObject { version, .. } => *version };
            seen.insert(ver)
        }).collect();
        let mut shuffled = ops.clone();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        shuffled.shuffle(&mut rng);
        for kind in [Kind::Set, Kind::Bag] {
            // DeleteObject on a set depends on the value held, so writers send it as a Delete
            // (see replica::resolve); sets get inserts and deletes.
            let pick: Vec<Op> = ops.iter().filter(|o| kind == Kind::Bag || !matches!(o, Op::DeleteObject { .. })).cloned().collect();
            let pick2: Vec<Op> = shuffled.iter().filter(|o| kind == Kind::Bag || !matches!(o, Op::DeleteObject { .. })).cloned().collect();
            prop_assert_eq!(apply_all(kind, &pick), apply_all(kind, &pick2));
        }
    }
}

#[test]
fn a_late_older_insert_does_not_bring_a_deleted_record_back() {
    let now = Instant::now();
    let mut s = Store::new(Kind::Set);
    s.watched = true;
    let mut changes = Vec::new();
    s.apply(
        now,
        &Op::Delete {
            key: b("k"),
            version: v(5, 1),
        },
        &mut changes,
    );
    s.apply(
        now,
        &Op::Insert {
            key: b("k"),
            value: b("x"),
            version: v(4, 2),
        },
        &mut changes,
    );
    assert!(s.is_empty());
    // Until the tombstone is collected.
    s.collect_tombstones(now + Duration::from_secs(60), Duration::from_secs(30));
    s.apply(
        now,
        &Op::Insert {
            key: b("k"),
            value: b("x"),
            version: v(4, 2),
        },
        &mut changes,
    );
    assert_eq!(s.len(), 1);
    assert_eq!(changes.len(), 1);
}

#[test]
fn bags_hold_many_values_and_delete_by_key_or_object() {
    let now = Instant::now();
    let mut s = Store::new(Kind::Bag);
    let mut c = Vec::new();
    for (i, val) in ["a", "b", "c"].iter().enumerate() {
        s.apply(
            now,
            &Op::Insert {
                key: b("k"),
                value: b(val),
                version: v(i as u64 + 1, 0),
            },
            &mut c,
        );
    }
    assert_eq!(s.get_all(b"k"), vec![b("a"), b("b"), b("c")]);
    s.apply(
        now,
        &Op::DeleteObject {
            key: b("k"),
            value: b("b"),
            version: v(10, 0),
        },
        &mut c,
    );
    assert_eq!(s.get_all(b"k"), vec![b("a"), b("c")]);
    s.apply(
        now,
        &Op::Delete {
            key: b("k"),
            version: v(11, 0),
        },
        &mut c,
    );
    assert!(s.get_all(b"k").is_empty());
    assert_eq!(s.memory(), 0);
}

#[test]
fn a_join_merges_through_the_handler_or_keeps_the_newer_write() {
    let left = vec![
        Record {
            key: b("both"),
            value: b("L"),
            version: v(3, 1),
        },
        Record {
            key: b("left"),
            value: b("1"),
            version: v(1, 1),
        },
        Record {
            key: b("same"),
            value: b("s"),
            version: v(2, 1),
        },
    ];
    let right = vec![
        Record {
            key: b("both"),
            value: b("R"),
            version: v(7, 2),
        },
        Record {
            key: b("right"),
            value: b("2"),
            version: v(1, 2),
        },
        Record {
            key: b("same"),
            value: b("s"),
            version: v(5, 2),
        },
    ];
    let handler: ConflictHandler =
        Arc::new(|_k: &[u8], l: &[u8], r: &[u8]| Bytes::from([l, r].concat()));
    let keys = |rs: &[Record]| {
        rs.iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let sides = |h: Option<&ConflictHandler>| {
        let (target, conflicts) = union(Kind::Set, h, 9, vec![left.clone(), right.clone()]);
        let to_left = diff(Kind::Set, &target, &left);
        let to_right = diff(Kind::Set, &target, &right);
        (conflicts, to_left, to_right)
    };
    let (conflicts, to_left, to_right) = sides(Some(&handler));
    assert_eq!(conflicts, 1);
    assert_eq!(
        keys(&to_left),
        BTreeMap::from([
            (b("both"), b("LR")),
            (b("right"), b("2")),
            (b("same"), b("s"))
        ]),
        "the same value at a newer version is sent too, so versions agree"
    );
    assert_eq!(
        keys(&to_right),
        BTreeMap::from([(b("both"), b("LR")), (b("left"), b("1"))])
    );
    assert!(to_left
        .iter()
        .all(|r| r.key != b("both") || r.version.time > 7));
    let (_, to_left, to_right) = sides(None);
    assert_eq!(
        keys(&to_left).get(&b("both")),
        Some(&b("R")),
        "the newer write wins"
    );
    assert!(!keys(&to_right).contains_key(&b("both")));
    // Three snapshots: every one ends up with the union.
    let third = vec![Record {
        key: b("third"),
        value: b("3"),
        version: v(1, 3),
    }];
    let (target, _) = union(
        Kind::Set,
        None,
        9,
        vec![left.clone(), right.clone(), third.clone()],
    );
    assert_eq!(target.len(), 5);
    assert_eq!(diff(Kind::Set, &target, &third).len(), 4);
    assert!(diff(Kind::Set, &target, &target).is_empty());
}

fn join_with(left: &[&str], right: &[&str], views: &[(&str, &[&str], u64)]) -> Join {
    let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    Join {
        table: "t".into(),
        remote: right[0].into(),
        then: Completion::Merge,
        deadline: Instant::now(),
        attempt: 0,
        started: Instant::now(),
        conflicts: 0,
        left: set(left),
        right: set(right),
        asked: set(left).union(&set(right)).cloned().collect(),
        views: views
            .iter()
            .map(|(n, seg, id)| {
                let view = SegmentView {
                    segment: set(seg),
                    join_id: *id,
                    digest: 0,
                };
                (n.to_string(), view)
            })
            .collect(),
        stage: Stage::Pausing,
    }
}

#[test]
fn overlapping_segments_and_disagreeing_replicas_are_refused() {
    let ok = join_with(
        &["a", "b"],
        &["c"],
        &[
            ("a", &["a", "b"], 1),
            ("b", &["a", "b"], 1),
            ("c", &["c"], 2),
        ],
    );
    assert_eq!(ok.check(), None);
    let overlap = join_with(
        &["a", "b"],
        &["b", "c"],
        &[
            ("a", &["a", "b"], 1),
            ("b", &["a", "b"], 1),
            ("c", &["b", "c"], 2),
        ],
    );
    let failure = overlap.check().unwrap();
    assert!(matches!(failure, JoinFailure::Overlap(_)) && failure.is_inconsistent());
    assert!(failure.to_string().contains("overlap"));
    let peers = join_with(
        &["a", "b"],
        &["c"],
        &[("a", &["a", "b"], 1), ("b", &["b"], 1), ("c", &["c"], 2)],
    );
    let failure = peers.check().unwrap();
    assert!(matches!(failure, JoinFailure::SegmentDisagreement { .. }));
    assert!(failure.to_string().contains("disagree on the segment"));
    let ids = join_with(
        &["a", "b"],
        &["c"],
        &[
            ("a", &["a", "b"], 1),
            ("b", &["a", "b"], 3),
            ("c", &["c"], 2),
        ],
    );
    let failure = ids.check().unwrap();
    assert!(matches!(failure, JoinFailure::JoinIdDisagreement(_)) && failure.is_inconsistent());
    assert!(failure.to_string().contains("join id"));
}

#[test]
fn writes_with_an_old_join_id_are_ignored_but_acked() {
    let now = Instant::now();
    let mut t = alone();
    let msg = TableMsg::Ops {
        table: "t".into(),
        join_id: t.info("t").unwrap().join_id ^ 1,
        seq: 0,
        ops: std::sync::Arc::new(vec![Op::Insert {
            key: b("k"),
            value: b("v"),
            version: v(1, 2),
        }]),
    };
    t.handle_message(now, "b", msg);
    let outs = outputs(&mut t);
    assert_eq!(
        sends(&outs),
        vec![(
            "b",
            &TableMsg::Ack {
                table: "t".into(),
                seq: 0
            }
        )]
    );
    assert_eq!(t.info("t").unwrap().size, 0);
}

#[test]
fn a_replica_paused_by_a_join_unpauses_when_the_coordinator_dies() {
    let now = Instant::now();
    let mut t = alone();
    t.handle_message(
        now,
        "c",
        TableMsg::Pause {
            table: "t".into(),
            join: 7,
        },
    );
    let outs = outputs(&mut t);
    assert!(matches!(
        sends(&outs)[..],
        [("c", TableMsg::Paused { join: 7, .. })]
    ));
    t.write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    assert_eq!(t.info("t").unwrap().size, 0, "queued while paused");
    // Another join is refused while the lock is held.
    t.handle_message(
        now,
        "d",
        TableMsg::Pause {
            table: "t".into(),
            join: 8,
        },
    );
    assert!(matches!(
        sends(&outputs(&mut t))[..],
        [("d", TableMsg::Refused { .. })]
    ));
    t.member_down(now, "c");
    assert_eq!(t.info("t").unwrap().size, 1);
    assert!(!t.info("t").unwrap().paused);
    assert!(outputs(&mut t).iter().any(|o| matches!(
        o,
        Output::Done {
            token: 1,
            result: Ok(Reply::Written)
        }
    )));
}

#[test]
fn a_write_to_a_peer_without_the_table_is_reported() {
    let now = Instant::now();
    let mut t = alone();
    // Make "b" a peer through a join it coordinated.
    t.handle_message(
        now,
        "b",
        TableMsg::Pause {
            table: "t".into(),
            join: 1,
        },
    );
    let join_id = 42;
    t.handle_message(
        now,
        "b",
        TableMsg::Apply {
            table: "t".into(),
            join: 1,
            total: 0,
            members: vec!["a".into(), "b".into()],
            join_id,
        },
    );
    t.handle_message(
        now,
        "b",
        TableMsg::Unpause {
            table: "t".into(),
            join: 1,
        },
    );
    assert_eq!(t.info("t").unwrap().members, vec!["a", "b"]);
    outputs(&mut t);
    t.write(now, "t", 5, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    t.handle_message(now, "b", TableMsg::NotHosted { table: "t".into() });
    let outs = outputs(&mut t);
    assert!(outs.iter().any(|o| matches!(o, Output::Done { token: 5, result: Err(TableError::NotHosted { node, .. }) } if node == "b")), "{outs:?}");
}

#[test]
fn bad_specs_and_oversized_or_excess_writes_fail_clearly() {
    let now = Instant::now();
    let mut t = Node::new("a", TableConfig::default(), 1);
    let bag = TableSpec {
        kind: Kind::Bag,
        conflict: Some(Arc::new(|_: &[u8], l: &[u8], _: &[u8]| {
            Bytes::copy_from_slice(l)
        })),
        ..TableSpec::set()
    };
    assert!(matches!(
        t.create("b", bag),
        Err(TableError::BagWithConflictHandler(_))
    ));
    t.create(
        "t",
        TableSpec {
            max_records: Some(1),
            ..TableSpec::set()
        },
    )
    .unwrap();
    assert!(matches!(
        t.create(
            "t",
            TableSpec {
                kind: Kind::Bag,
                ..TableSpec::set()
            }
        ),
        Err(TableError::KindMismatch { .. })
    ));
    let big = Bytes::from(vec![0u8; 300 * 1024]);
    assert!(matches!(
        t.write(now, "t", 1, vec![WriteOp::Insert(b("k"), big)]),
        Err(TableError::TooLarge { .. })
    ));
    t.write(now, "t", 2, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    t.write(now, "t", 3, vec![WriteOp::Insert(b("k"), b("w"))])
        .expect("replacing is not growing");
    let err = t
        .write(now, "t", 4, vec![WriteOp::Insert(b("k2"), b("v"))])
        .unwrap_err();
    assert!(err.to_string().contains("max_records = 1"), "{err}");
    assert!(matches!(
        t.write(now, "nope", 5, vec![]),
        Err(TableError::Unknown(_))
    ));
}

/// Two replicas `a` and `b` of the set "t" in one segment, messages not yet delivered.
fn pair(now: Instant) -> (Node, Node) {
    let a = joined(now, "a", "b", 1);
    (a, joined(now, "b", "a", 1))
}

/// The replica of the set "t" on node "a", which has no peers.
fn alone() -> Node {
    let mut t = Node::new("a", TableConfig::default(), 1);
    t.create("t", TableSpec::set()).unwrap();
    t
}

/// The replica of "t" on `me`, in one segment with `other` (join id 42).
fn joined(now: Instant, me: &str, other: &str, seed: u64) -> Node {
    {
        let mut t = Node::new(me, TableConfig::default(), seed);
        t.create("t", TableSpec::set()).unwrap();
        t.peer_up(now, other);
        let pause = TableMsg::Pause {
            table: "t".into(),
            join: 1,
        };
        t.handle_message(now, "coordinator", pause);
        let apply = TableMsg::Apply {
            table: "t".into(),
            join: 1,
            total: 0,
            members: vec!["a".into(), "b".into()],
            join_id: 42,
        };
        t.handle_message(now, "coordinator", apply);
        let unpause = TableMsg::Unpause {
            table: "t".into(),
            join: 1,
        };
        t.handle_message(now, "coordinator", unpause);
        outputs(&mut t);
        assert_eq!(t.info("t").unwrap().members, vec!["a", "b"]);
        t
    }
}

/// Delivers every message between `a` and `b` until none is left.
fn deliver(now: Instant, a: &mut Node, b: &mut Node) {
    fn sent(t: &mut Node) -> Vec<TableMsg> {
        outputs(t)
            .into_iter()
            .filter_map(|o| match o {
                Output::Send { msg, .. } => Some(msg),
                _ => None,
            })
            .collect()
    }
    loop {
        let (from_a, from_b) = (sent(a), sent(b));
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for m in from_a {
            b.handle_message(now, "a", m);
        }
        for m in from_b {
            a.handle_message(now, "b", m);
        }
    }
}

fn held(t: &Tables) -> Vec<Record> {
    t.store("t").unwrap().read().unwrap().records()
}

#[test]
fn a_set_delete_object_racing_an_insert_leaves_replicas_equal() {
    let now = Instant::now();
    let (mut na, mut nb) = pair(now);
    na.write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("x"))])
        .unwrap();
    deliver(now, &mut na, &mut nb);
    assert_eq!(held(&na), held(&nb));
    assert_eq!(held(&nb).len(), 1);
    // At once: a replaces the value, b deletes the value it holds.
    na.write(now, "t", 2, vec![WriteOp::Insert(b("k"), b("y"))])
        .unwrap();
    nb.write(now, "t", 3, vec![WriteOp::DeleteObject(b("k"), b("x"))])
        .unwrap();
    deliver(now, &mut na, &mut nb);
    assert_eq!(held(&na), held(&nb), "the replicas agree");
    // A delete_object of a value not held here is a no-op that still completes.
    nb.write(now, "t", 4, vec![WriteOp::DeleteObject(b("k"), b("zzz"))])
        .unwrap();
    assert!(outputs(&mut nb).iter().any(|o| matches!(
        o,
        Output::Done {
            token: 4,
            result: Ok(Reply::Written)
        }
    )));
}

#[test]
fn an_old_tombstone_expiring_keeps_a_newer_delete() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(30);
    let ins = |value: &str, time| Op::Insert {
        key: b("k"),
        value: b(value),
        version: v(time, 0),
    };
    let del = |time| Op::Delete {
        key: b("k"),
        version: v(time, 0),
    };
    for kind in [Kind::Set, Kind::Bag] {
        let mut s = Store::new(kind);
        let c = &mut Vec::new();
        s.apply(t0, &ins("x", 1), c);
        s.apply(t0, &del(2), c);
        s.apply(t0, &ins("x", 3), c);
        // A newer delete, well after the first.
        let t1 = t0 + Duration::from_secs(20);
        s.apply(t1, &del(4), c);
        // The first tombstone expires; the second must still stop a late write older than it.
        s.collect_tombstones(t0 + ttl + Duration::from_secs(1), ttl);
        s.apply(t1, &ins("x", 3), c);
        assert!(s.is_empty(), "{kind:?}: the newer delete still holds");
        // Bag objects: deleting one object twice, the older expiry keeps the newer tombstone.
        let mut s = Store::new(kind);
        let obj = |time| Op::DeleteObject {
            key: b("k"),
            value: b("x"),
            version: v(time, 0),
        };
        s.apply(t0, &ins("x", 1), c);
        s.apply(t0, &obj(2), c);
        s.apply(t0, &ins("x", 3), c);
        s.apply(t1, &obj(4), c);
        s.collect_tombstones(t0 + ttl + Duration::from_secs(1), ttl);
        s.apply(t1, &ins("x", 3), c);
        assert!(
            s.is_empty(),
            "{kind:?}: the newer object delete still holds"
        );
        // Everything is collected in the end.
        s.collect_tombstones(t1 + ttl + Duration::from_secs(1), ttl);
        s.apply(t1, &ins("x", 3), c);
        assert_eq!(
            s.len(),
            1,
            "{kind:?}: tombstones are collected after their time"
        );
    }
}

#[test]
fn a_join_applied_after_a_member_went_down_does_not_wait_for_it() {
    let now = Instant::now();
    let mut t = alone();
    let table = || "t".to_string();
    t.handle_message(
        now,
        "c",
        TableMsg::Pause {
            table: table(),
            join: 1,
        },
    );
    // The coordinator decided on [a, b, c]; b's down verdict reaches a before the Apply.
    t.member_down(now, "b");
    let apply = TableMsg::Apply {
        table: table(),
        join: 1,
        total: 0,
        members: vec!["a".into(), "b".into(), "c".into()],
        join_id: 9,
    };
    t.handle_message(now, "c", apply);
    t.handle_message(
        now,
        "c",
        TableMsg::Unpause {
            table: table(),
            join: 1,
        },
    );
    assert_eq!(t.info("t").unwrap().members, vec!["a", "c"]);
    outputs(&mut t);
    t.write(now, "t", 7, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    t.handle_message(
        now,
        "c",
        TableMsg::Ack {
            table: table(),
            seq: 0,
        },
    );
    assert!(outputs(&mut t).iter().any(|o| matches!(
        o,
        Output::Done {
            token: 7,
            result: Ok(Reply::Written)
        }
    )));
    // Nor does a join with it start until it is up again.
    t.join(now, "t", "b", 8, now + Duration::from_secs(5))
        .unwrap();
    assert!(outputs(&mut t).iter().any(|o| matches!(
        o,
        Output::Done {
            token: 8,
            result: Err(TableError::Join { .. })
        }
    )));
}

#[test]
fn a_restarted_node_s_leader_calls_are_not_answered_from_its_earlier_ones() {
    let now = Instant::now();
    let (mut na, mut nb) = pair(now);
    let insert_new = |k: &str| LeaderOp::InsertNew {
        key: b(k),
        value: b("v"),
    };
    let deadline = now + Duration::from_secs(5);
    nb.leader(now, "t", 1, insert_new("first"), deadline)
        .unwrap();
    deliver(now, &mut na, &mut nb);
    // b restarts (a new incarnation seeds it differently) and asks again, for another key.
    let mut nb = joined(now, "b", "a", 2);
    nb.leader(now, "t", 1, insert_new("second"), deadline)
        .unwrap();
    deliver(now, &mut na, &mut nb);
    let keys: Vec<Bytes> = held(&na).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, vec![b("first"), b("second")]);
}

#[test]
fn ping_all_returns_only_after_every_earlier_write_arrived() {
    let now = Instant::now();
    let (mut na, mut nb) = pair(now);
    // More writes than the window holds: some wait for acks before they go out.
    let writes = TableConfig::default().window as u64 * 2;
    for i in 0..writes {
        let key = b(&format!("k{i}"));
        na.write(now, "t", 100 + i, vec![WriteOp::Insert(key, b("v"))])
            .unwrap();
    }
    na.ping_all(now, "t", 1, now + Duration::from_secs(5))
        .unwrap();
    let mut pinged = false;
    for _ in 0..100 {
        // What a sends in the same batch as the answer is still in flight when the caller
        // hears it.
        let outs = outputs(&mut na);
        for o in &outs {
            if let Output::Done { token: 1, result } = o {
                assert_eq!(result, &Ok(Reply::Pinged));
                assert_eq!(held(&nb).len() as u64, writes, "b applied every write");
                pinged = true;
            }
        }
        for o in outs {
            if let Output::Send { msg, .. } = o {
                nb.handle_message(now, "a", msg);
            }
        }
        for o in outputs(&mut nb) {
            if let Output::Send { msg, .. } = o {
                na.handle_message(now, "b", msg);
            }
        }
    }
    assert!(pinged);
}

/// `t` applies a join (id `join_id`, members a and b) that its peer did not see.
fn apply_alone(now: Instant, t: &mut Node, join: u64, join_id: u64) {
    let table = || "t".to_string();
    t.handle_message(
        now,
        "coordinator",
        TableMsg::Pause {
            table: table(),
            join,
        },
    );
    let apply = TableMsg::Apply {
        table: table(),
        join,
        total: 0,
        members: vec!["a".into(), "b".into()],
        join_id,
    };
    t.handle_message(now, "coordinator", apply);
    t.handle_message(
        now,
        "coordinator",
        TableMsg::Unpause {
            table: table(),
            join,
        },
    );
}

#[test]
fn a_peer_writing_under_a_replaced_join_id_is_re_merged_not_ignored() {
    let now = Instant::now();
    let (mut na, mut nb) = pair(now);
    apply_alone(now, &mut na, 2, 43);
    outputs(&mut na);
    // b missed that join: it still counts a and writes under the old id.
    nb.write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    for o in outputs(&mut nb) {
        if let Output::Send { msg, .. } = o {
            na.handle_message(now, "b", msg);
        }
    }
    assert_eq!(na.info("t").unwrap().members, vec!["a"], "a drops b");
    // And a re-merges with b (a, the lower name, at once).
    na.tick(now + Duration::from_secs(1));
    let outs = outputs(&mut na);
    assert!(
        sends(&outs)
            .iter()
            .any(|(to, m)| *to == "b" && matches!(m, TableMsg::Pause { .. })),
        "{outs:?}"
    );
}

#[test]
fn a_join_that_fails_after_its_apply_went_out_is_repaired() {
    let t0 = Instant::now();
    let mut na = Node::new("a", TableConfig::default(), 1);
    let mut nb = Node::new("b", TableConfig::default(), 2);
    for (t, other, key) in [(&mut na, "b", "from-a"), (&mut nb, "a", "from-b")] {
        t.create("t", TableSpec::set()).unwrap();
        t.write(t0, "t", 1, vec![WriteOp::Insert(b(key), b("v"))])
            .unwrap();
        t.peer_up(t0, other);
    }
    // Deliver everything, except the first Apply to b; tick every 100 ms until the join's
    // deadline (10 s) plus a few seconds: the repair must not wait for b's lock to expire (30 s).
    let mut dropped = false;
    let mut now = t0;
    while now < t0 + Duration::from_secs(15) {
        for (from, to) in [("a", "b"), ("b", "a")] {
            let (src, dst) = if from == "a" {
                (&mut na, &mut nb)
            } else {
                (&mut nb, &mut na)
            };
            for o in outputs(src) {
                if let Output::Send { msg, .. } = o {
                    if to == "b" && !dropped && matches!(msg, TableMsg::Apply { .. }) {
                        dropped = true;
                        continue;
                    }
                    dst.handle_message(now, from, msg);
                }
            }
        }
        now += Duration::from_millis(100);
        na.tick(now);
        nb.tick(now);
    }
    assert!(dropped, "a join reached its apply");
    assert_eq!(na.info("t").unwrap().members, vec!["a", "b"]);
    assert_eq!(nb.info("t").unwrap().members, vec!["a", "b"]);
    assert_eq!(na.info("t").unwrap().join_id, nb.info("t").unwrap().join_id);
    assert_eq!(held(&na), held(&nb));
    assert_eq!(held(&na).len(), 2);
}

#[test]
fn a_leader_request_of_our_own_queued_by_a_pause_is_answered_when_it_ends() {
    let now = Instant::now();
    let mut t = alone();
    let pause = TableMsg::Pause {
        table: "t".into(),
        join: 7,
    };
    t.handle_message(now, "c", pause);
    outputs(&mut t);
    let op = LeaderOp::InsertNew {
        key: b("k"),
        value: b("v"),
    };
    t.leader(now, "t", 1, op, now + Duration::from_secs(5))
        .unwrap();
    assert!(outputs(&mut t).is_empty(), "queued while paused");
    // The coordinator dies: the replica unpauses and serves the queued request, and the
    // answer to ourselves is handled here, not sent to the network.
    t.member_down(now, "c");
    let outs = outputs(&mut t);
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Done {
                token: 1,
                result: Ok(Reply::Leader(LeaderResult::Inserted))
            }
        )),
        "{outs:?}"
    );
    assert!(sends(&outs).iter().all(|(to, _)| *to != "a"), "{outs:?}");
}

#[test]
fn a_version_at_the_end_of_the_range_does_not_overflow_the_clock() {
    let now = Instant::now();
    let mut s = Store::new(Kind::Set);
    let op = Op::Insert {
        key: b("k"),
        value: b("v"),
        version: v(u64::MAX, 1),
    };
    s.apply(now, &op, &mut Vec::new());
    assert_eq!(s.next_version(2).time, u64::MAX);
}

#[test]
fn a_set_and_a_bag_of_one_name_are_not_joined() {
    let now = Instant::now();
    let mut na = Node::new("a", TableConfig::default(), 1);
    let mut nb = Node::new("b", TableConfig::default(), 2);
    na.create("t", TableSpec::set()).unwrap();
    let bag = TableSpec {
        kind: Kind::Bag,
        ..TableSpec::set()
    };
    nb.create("t", bag).unwrap();
    outputs(&mut na);
    outputs(&mut nb);
    na.join(now, "t", "b", 9, now + Duration::from_secs(5))
        .unwrap();
    let mut failed = None;
    for _ in 0..10 {
        for o in outputs(&mut na) {
            match o {
                Output::Send { msg, .. } => nb.handle_message(now, "a", msg),
                Output::Done { token: 9, result } => failed = Some(result),
                _ => {}
            }
        }
        for o in outputs(&mut nb) {
            if let Output::Send { msg, .. } = o {
                na.handle_message(now, "b", msg);
            }
        }
    }
    let err = failed.expect("the join ends").unwrap_err();
    assert!(
        err.to_string().contains("a bag on b and a set here"),
        "{err}"
    );
    assert_eq!(na.info("t").unwrap().members, vec!["a"]);
    assert_eq!(nb.info("t").unwrap().members, vec!["b"]);
    assert!(!nb.info("t").unwrap().paused, "b is released");
}

#[test]
fn a_snapshot_goes_in_chunks_of_about_chunk_bytes_and_is_forced_whole_from_them() {
    let now = Instant::now();
    let records: Vec<Record> = (0..1000)
        .map(|i| Record {
            key: b(&format!("k{i:05}")),
            value: Bytes::from(vec![7; 30 + i % 20]),
            version: v(i as u64 + 1, 9),
        })
        .collect();
    let mut source = Store::new(Kind::Set);
    for r in &records {
        let op = Op::Insert {
            key: r.key.clone(),
            value: r.value.clone(),
            version: r.version,
        };
        source.apply(now, &op, &mut Vec::new());
    }
    let chunks = source.chunks(4096);
    // Every chunk but the last reaches the size, and passes it by less than one record; each
    // is allocated at its size.
    let size = |c: &[Record]| -> usize { c.iter().map(|r| r.key.len() + r.value.len() + 24).sum() };
    let (last, full) = chunks.split_last().unwrap();
    assert!(full.len() >= 15, "{} chunks", chunks.len());
    for c in full {
        assert!((4096..4096 + 80).contains(&size(c)), "{}", size(c));
        assert_eq!(c.capacity(), c.len());
    }
    assert!(size(last) < 4096 + 80);
    assert_eq!(chunks.concat(), records);
    assert_eq!(source.records(), records);
    // A join that merged two snapshots cuts its result the same way.
    assert_eq!(super::join::cut(records.clone(), 4096), chunks);

    // A join's chunks, in key order, build an empty replica in one pass; the same records
    // out of order take the record-by-record path and end the same.
    let mut changes = Vec::new();
    let mut store = Store::new(Kind::Set);
    store.force_all(now, chunks.clone(), &mut changes);
    assert_eq!(store.records(), records);
    assert_eq!(store.digest(), source.digest());
    let mut reversed = chunks;
    reversed.reverse();
    let mut other = Store::new(Kind::Set);
    other.force_all(now, reversed, &mut changes);
    assert_eq!(other.records(), records);
    assert_eq!(other.digest(), store.digest());
    assert_eq!(other.memory(), store.memory());
}

#[test]
fn a_write_with_peers_is_sent_first_and_applied_here_before_the_next_input() {
    let now = Instant::now();
    let (mut na, mut nb) = pair(now);
    let store = na.store("t").unwrap();
    store.write().unwrap().watched = true;
    let value = |k: &str| store.read().unwrap().get(k.as_bytes()).map(<[u8]>::to_vec);
    let n = replica::LATER_MIN;
    let keys = || (0..n).map(|i| b(&format!("k{i}")));
    let many = |value: &str| keys().map(|k| WriteOp::Insert(k, b(value))).collect();
    na.write(now, "t", 1, many("x")).unwrap();
    // The write is on its way, not applied here yet, and the runtime is asked back at once.
    let outs = outputs(&mut na);
    assert!(matches!(sends(&outs)[..], [("b", TableMsg::Ops { .. })]));
    assert_eq!(value("k0"), None);
    assert!(na.unsettled());
    assert_eq!(na.poll_timeout(), Some(now));
    // The next input applies it before its own work: writes apply in the order made.
    na.write(now, "t", 2, many("y")).unwrap();
    assert_eq!(value("k0").as_deref(), Some(&b"x"[..]));
    na.settle(now);
    assert_eq!(value("k0").as_deref(), Some(&b"y"[..]));
    assert!(!na.unsettled());
    // Subscribers hear of every change, once each, in order.
    let changed: Vec<_> = outs
        .into_iter()
        .chain(outputs(&mut na))
        .filter_map(|o| match o {
            Output::Changed { changes, .. } => Some(changes),
            _ => None,
        })
        .flatten()
        .filter(|c| c.key == b("k0"))
        .map(|c| (c.old, c.new))
        .collect();
    assert_eq!(
        changed,
        vec![(None, Some(b("x"))), (Some(b("x")), Some(b("y")))]
    );
    // A small write is applied at once: leaving it for later would cost more than it saves.
    na.write(now, "t", 3, vec![WriteOp::Insert(b("k0"), b("z"))])
        .unwrap();
    assert_eq!(value("k0").as_deref(), Some(&b"z"[..]));
    // So is a set's delete_object, which depends on what is held.
    let deletes = keys().map(|k| WriteOp::DeleteObject(k, b("y"))).collect();
    na.write(now, "t", 4, deletes).unwrap();
    assert_eq!(
        (value("k0").as_deref(), value("k1")),
        (Some(&b"z"[..]), None)
    );
    assert!(!na.unsettled());
    // Both replicas end equal, and the writes complete with the acks.
    deliver(now, &mut na, &mut nb);
    assert_eq!(held(&na), held(&nb));
    assert_eq!(held(&na).len(), 1);
}

#[test]
fn a_write_without_peers_is_applied_at_once() {
    let now = Instant::now();
    let mut t = alone();
    t.write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("v"))])
        .unwrap();
    assert!(!t.unsettled());
    assert_eq!(held(&t).len(), 1);
}

#[test]
fn a_completed_join_reports_its_duration_and_the_conflicts_it_settled() {
    let now = Instant::now();
    let mut a = alone();
    let mut other = Node::new("b", TableConfig::default(), 2);
    other.create("t", TableSpec::set()).unwrap();
    // "k" is held with different values on the two sides; "x" and "y" on one side each.
    a.write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("from a"))])
        .unwrap();
    a.write(now, "t", 2, vec![WriteOp::Insert(b("x"), b("1"))])
        .unwrap();
    other
        .write(now, "t", 1, vec![WriteOp::Insert(b("k"), b("from b"))])
        .unwrap();
    other
        .write(now, "t", 2, vec![WriteOp::Insert(b("y"), b("1"))])
        .unwrap();
    a.peer_up(now, "b");
    other.peer_up(now, "a");
    outputs(&mut a);
    outputs(&mut other);
    let later = now + Duration::from_millis(30);
    a.join(now, "t", "b", 3, now + Duration::from_secs(10))
        .unwrap();
    // Deliver everything, keeping the coordinator's other outputs.
    let mut kept = Vec::new();
    loop {
        let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
        for o in outputs(&mut a) {
            match o {
                Output::Send { msg, .. } => from_a.push(msg),
                other => kept.push(other),
            }
        }
        for o in outputs(&mut other) {
            if let Output::Send { msg, .. } = o {
                from_b.push(msg);
            }
        }
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        from_a
            .into_iter()
            .for_each(|m| other.handle_message(later, "a", m));
        from_b
            .into_iter()
            .for_each(|m| a.handle_message(later, "b", m));
    }
    let joined: Vec<_> = kept
        .iter()
        .filter_map(|o| match o {
            Output::Joined {
                table,
                node,
                took,
                conflicts,
            } => Some((table.as_str(), node.as_str(), *took, *conflicts)),
            _ => None,
        })
        .collect();
    assert_eq!(
        joined,
        vec![("t", "b", Duration::from_millis(30), 1)],
        "{kept:?}"
    );
    let stats = a.info("t").unwrap().joins;
    assert_eq!((stats.joins, stats.conflicts_resolved), (1, 1));
    let (with, _, took) = stats.last.expect("the last join");
    assert_eq!((with.as_str(), took), ("b", Duration::from_millis(30)));
    assert_eq!(held(&a).len(), 3);
    // The other side took part but did not coordinate: nothing counted there.
    assert_eq!(other.info("t").unwrap().joins, JoinStats::default());
}
