//! Replicated tables under the simulator: the real table protocol over the real membership,
//! with FIFO links, partitions and crashes on a virtual clock (a failing seed reproduces).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::table::{
    self, ConflictHandler, LeaderOp, LeaderResult, Reply, TableError, TableSpec, WriteOp,
};
use ensemble_proto::{EventKind, Status};
use ensemble_sim::{NodeId, Sim};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{cluster, cluster_with};

const T: &str = "sessions";

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The token of commands answered at once here.
const CALL: u64 = u64::MAX;

/// The last answer node `id` gave with `token`.
fn answer(sim: &Sim, id: NodeId, token: u64) -> Option<Result<Reply, TableError>> {
    sim.table_outputs.iter().rev().find_map(|(n, o)| match o {
        table::Output::Done { token: t, result } if *t == token && *n == id => Some(result.clone()),
        _ => None,
    })
}

fn create(sim: &mut Sim, ids: &[NodeId], spec: &TableSpec) {
    for id in ids {
        let input = table::Input::Create {
            token: CALL,
            table: T.into(),
            spec: spec.clone(),
        };
        sim.table(*id, input).expect("running");
        assert_eq!(answer(sim, *id, CALL), Some(Ok(Reply::Created)));
    }
}

/// Fails if the node refused the command at once (an unknown table, over the limits).
fn accepted(sim: &Sim, id: NodeId, token: u64) {
    if let Some(Err(
        e @ (TableError::Unknown(_) | TableError::TooLarge { .. } | TableError::Full { .. }),
    )) = answer(sim, id, token)
    {
        panic!("refused: {e}");
    }
}

fn write(sim: &mut Sim, id: NodeId, token: u64, ops: Vec<WriteOp>) {
    let input = table::Input::Write {
        token,
        table: T.into(),
        ops,
    };
    sim.table(id, input).expect("running");
    accepted(sim, id, token);
}

/// Asks node `id` for a leader operation, answered with `token`.
fn leader(sim: &mut Sim, id: NodeId, token: u64, op: LeaderOp, within: Duration) {
    let input = table::Input::Leader {
        token,
        table: T.into(),
        op,
        deadline: sim.now() + within,
    };
    sim.table(id, input).expect("running");
    accepted(sim, id, token);
}

fn put(sim: &mut Sim, id: NodeId, token: u64, k: &str, v: &str) {
    write(sim, id, token, vec![WriteOp::Insert(b(k), b(v))]);
}

fn members(sim: &Sim, id: NodeId) -> Vec<String> {
    sim.table_info(id, T).map(|i| i.members).unwrap_or_default()
}

fn all_joined(sim: &Sim, ids: &[NodeId]) -> bool {
    ids.iter().all(|id| members(sim, *id).len() == ids.len())
}

fn contents(sim: &Sim, id: NodeId) -> Vec<(Bytes, Bytes)> {
    sim.table_records(id, T)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

fn done(sim: &Sim, token: u64) -> Option<Result<Reply, TableError>> {
    sim.table_outputs.iter().find_map(|(_, o)| match o {
        table::Output::Done { token: t, result } if *t == token => Some(result.clone()),
        _ => None,
    })
}

fn wait_done(sim: &mut Sim, token: u64, limit: Duration) -> Result<Reply, TableError> {
    sim.run_until(limit, |s| done(s, token).is_some())
        .unwrap_or_else(|| panic!("operation {token} did not complete"));
    done(sim, token).expect("completed")
}

fn identical(sim: &Sim, ids: &[NodeId]) -> bool {
    let first = contents(sim, ids[0]);
    ids.iter().all(|id| contents(sim, *id) == first)
}

fn concat() -> ConflictHandler {
    Arc::new(|_k: &[u8], l: &[u8], r: &[u8]| {
        let (a, b) = if l <= r { (l, r) } else { (r, l) };
        Bytes::from([a, b"+", b].concat())
    })
}

/// `n` nodes with one set table whose replicas joined into one segment.
fn joined_set(n: usize, seed: u64) -> (Sim, Vec<NodeId>) {
    let (mut sim, ids) = cluster(n, seed);
    create(&mut sim, &ids, &TableSpec::set());
    sim.run_until(Duration::from_secs(5), |s| all_joined(s, &ids))
        .expect("one segment");
    (sim, ids)
}

#[test]
fn replicas_created_on_connected_nodes_join_and_replicate_writes() {
    let (mut sim, ids) = joined_set(3, 1);
    put(&mut sim, ids[1], 1, "alice", "room-1");
    assert_eq!(
        wait_done(&mut sim, 1, Duration::from_secs(1)),
        Ok(Reply::Written)
    );
    // Synchronous: every replica has it when the write completes.
    for id in &ids {
        assert_eq!(contents(&sim, *id), vec![(b("alice"), b("room-1"))]);
    }
    write(&mut sim, ids[2], 2, vec![WriteOp::Delete(b("alice"))]);
    wait_done(&mut sim, 2, Duration::from_secs(1)).expect("deleted");
    assert!(ids.iter().all(|id| contents(&sim, *id).is_empty()));
    let info = sim.table_info(ids[2], T).expect("hosted");
    assert_eq!(info.leader, "n0");
    assert!(ids
        .iter()
        .all(|id| sim.table_info(*id, T).unwrap().join_id == info.join_id));
}

/// Writes on both sides of a partition, then the heal: the segments re-merge by themselves,
/// conflicts go through the handler, and both sides hold the same records.
fn split_and_heal(handler: Option<ConflictHandler>, seed: u64) -> (Sim, Vec<NodeId>) {
    let (mut sim, ids) = cluster(4, seed);
    let spec = TableSpec {
        conflict: handler,
        ..TableSpec::set()
    };
    create(&mut sim, &ids, &spec);
    sim.run_until(Duration::from_secs(5), |s| all_joined(s, &ids))
        .expect("one segment");
    let (left, right) = (ids[..2].to_vec(), ids[2..].to_vec());
    sim.partition(&left, &right);
    sim.run_until(Duration::from_secs(20), |s| {
        all_joined(s, &left) && all_joined(s, &right)
    })
    .expect("each side drops the other");
    put(&mut sim, left[0], 1, "k", "left");
    put(&mut sim, right[1], 2, "k", "right");
    put(&mut sim, left[1], 3, "only-left", "1");
    put(&mut sim, right[0], 4, "only-right", "2");
    for t in 1..=4 {
        wait_done(&mut sim, t, Duration::from_secs(1)).expect("written on its side");
    }
    sim.heal();
    if sim
        .run_until(Duration::from_secs(30), |s| {
            all_joined(s, &ids) && identical(s, &ids)
        })
        .is_none()
    {
        for id in &ids {
            eprintln!("{:?} {:?}", sim.table_info(*id, T), contents(&sim, *id));
        }
        eprintln!(
            "status {:?} {:?} kinds {:?}",
            sim.status(ids[0], ids[2]),
            sim.status(ids[2], ids[0]),
            sim.by_kind
                .iter()
                .filter(|(k, _)| k.starts_with("table"))
                .collect::<Vec<_>>()
        );
        for (at, o) in &sim.table_outputs {
            if !matches!(o, table::Output::Changed { .. }) {
                eprintln!("{at} {o:?}");
            }
        }
        panic!("the segments re-merge after the heal");
    }
    (sim, ids)
}

#[test]
fn after_a_partition_heals_the_sides_re_merge_through_the_conflict_handler() {
    let (sim, ids) = split_and_heal(Some(concat()), 2);
    let got = contents(&sim, ids[3]);
    assert_eq!(
        got,
        vec![
            (b("k"), b("left+right")),
            (b("only-left"), b("1")),
            (b("only-right"), b("2"))
        ]
    );
    let merges = sim
        .table_outputs
        .iter()
        .filter(|(_, o)| matches!(o, table::Output::Merged { result: Ok(()), .. }))
        .count();
    assert!(merges >= 1);
}

#[test]
fn without_a_handler_the_newer_write_wins_on_both_sides() {
    let (sim, ids) = split_and_heal(None, 3);
    let got = contents(&sim, ids[0]);
    assert_eq!(got.len(), 3);
    let k = &got[0];
    assert!(k.1 == b("left") || k.1 == b("right"), "{got:?}");
    // Down history: each side saw the other go down.
    let info = sim.table_info(ids[0], T).expect("hosted");
    assert!(info.down_history.iter().any(|(n, _)| n == "n2"), "{info:?}");
}

#[test]
fn a_write_returns_when_a_replica_crashes_mid_write() {
    let (mut sim, ids) = joined_set(3, 4);
    sim.crash(ids[2]);
    put(&mut sim, ids[0], 1, "k", "v");
    let took = sim
        .run_until(Duration::from_secs(20), |s| done(s, 1).is_some())
        .expect("completes once the replica is down");
    assert_eq!(done(&sim, 1), Some(Ok(Reply::Written)));
    assert!(took < Duration::from_secs(10), "{took:?}");
    // It waited for the crashed replica until the writer saw it down.
    let down_at = sim
        .events()
        .iter()
        .find(|e| e.observer == ids[0] && e.target == ids[2] && e.kind == EventKind::Down)
        .map(|e| e.at)
        .expect("n0 saw n2 down");
    assert!(sim.elapsed() >= down_at, "returned before n2 was down");
    assert_eq!(contents(&sim, ids[1]), vec![(b("k"), b("v"))]);
    let downs = sim
        .table_outputs
        .iter()
        .filter(|(at, o)| {
            *at == ids[0] && matches!(o, table::Output::Down { node, .. } if node == "n2")
        })
        .count();
    assert_eq!(downs, 1, "handle_down runs once");
}

#[test]
fn insert_new_is_retried_across_a_leader_change() {
    let (mut sim, ids) = joined_set(3, 5);
    sim.crash(ids[0]); // the leader
    let deadline = Duration::from_secs(15);
    let op = LeaderOp::InsertNew {
        key: b("lock"),
        value: b("n2"),
    };
    leader(&mut sim, ids[2], 1, op, deadline);
    let r = wait_done(&mut sim, 1, deadline);
    assert_eq!(r, Ok(Reply::Leader(LeaderResult::Inserted)));
    assert_eq!(sim.table_info(ids[2], T).unwrap().leader, "n1");
    assert_eq!(contents(&sim, ids[1]), vec![(b("lock"), b("n2"))]);
    // Asked again: the key exists, cluster-wide.
    let op = LeaderOp::InsertNewOrLookup {
        key: b("lock"),
        value: b("n1"),
    };
    leader(&mut sim, ids[1], 2, op, deadline);
    let r = wait_done(&mut sim, 2, deadline);
    assert_eq!(r, Ok(Reply::Leader(LeaderResult::Exists(b("n2")))));
}

/// The values node `id` saw key `k` take, in order, in the changes it reported from the
/// `from`-th table output on.
fn values_seen(sim: &Sim, id: NodeId, k: &str, from: usize) -> Vec<Bytes> {
    let outputs = &sim.table_outputs[from..];
    let changes = outputs
        .iter()
        .filter(|(n, _)| *n == id)
        .flat_map(|(_, o)| match o {
            table::Output::Changed { changes, .. } => changes.clone(),
            _ => Vec::new(),
        });
    changes
        .filter(|c| c.key == b(k))
        .filter_map(|c| c.new)
        .collect()
}

/// Has every replica report its changes (as when someone subscribes).
fn watch(sim: &Sim, ids: &[NodeId]) {
    for id in ids {
        let store = sim.table_store(*id, T).unwrap();
        store.write().unwrap().watched = true;
    }
}

/// Serial writes of `k` by each of `writers`, `rounds` times, all asked at once; tokens from
/// `first` on. Returns the tokens.
fn serial_writes(
    sim: &mut Sim,
    writers: &[NodeId],
    k: &str,
    rounds: usize,
    first: u64,
) -> Vec<u64> {
    let mut tokens = Vec::new();
    for round in 0..rounds {
        for w in writers {
            let value = format!("{}-{round}", sim.name(*w));
            let op = LeaderOp::InsertSerial {
                records: vec![(b(k), b(&value))],
            };
            let token = first + tokens.len() as u64;
            leader(sim, *w, token, op, Duration::from_secs(15));
            tokens.push(token);
        }
    }
    tokens
}

/// Waits until every call completed, and checks each wrote.
fn all_inserted(sim: &mut Sim, tokens: &[u64]) {
    sim.run_until(Duration::from_secs(20), |s| {
        tokens.iter().all(|t| done(s, *t).is_some())
    })
    .expect("every serial write completes");
    for t in tokens {
        assert_eq!(
            done(sim, *t),
            Some(Ok(Reply::Leader(LeaderResult::Inserted)))
        );
    }
}

#[test]
fn insert_serial_goes_through_the_leader_and_lands_in_one_order_everywhere() {
    let (mut sim, ids) = joined_set(3, 11);
    watch(&sim, &ids);
    let from = sim.table_outputs.len();
    // Every node writes the same key four times, all at once: a plain write would be applied
    // first where it was made, so each replica would see another order (and skip writes
    // older than one it holds).
    let tokens = serial_writes(&mut sim, &ids, "s", 4, 1);
    all_inserted(&mut sim, &tokens);
    sim.run_for(Duration::from_millis(200));
    let order = values_seen(&sim, ids[0], "s", from);
    assert_eq!(order.len(), tokens.len(), "every write applied: {order:?}");
    for id in &ids[1..] {
        assert_eq!(
            values_seen(&sim, *id, "s", from),
            order,
            "the leader's order"
        );
    }
    // Written by the leader (the lowest name), whoever asked.
    for id in &ids {
        let records = sim.table_records(*id, T).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].version.origin, table::origin_of("n0"));
    }
}

#[test]
fn insert_serial_moves_to_the_new_leader_when_the_leader_crashes() {
    let (mut sim, ids) = joined_set(3, 12);
    let before = serial_writes(&mut sim, &ids[1..], "s", 1, 1);
    all_inserted(&mut sim, &before);
    watch(&sim, &ids);
    sim.crash(ids[0]); // the leader
    let from = sim.table_outputs.len();
    // Asked of the crashed leader before anyone noticed; retried until n1 leads, then done.
    let tokens = serial_writes(&mut sim, &ids[1..], "s", 3, 100);
    for t in &tokens {
        assert_eq!(
            done(&sim, *t),
            None,
            "nothing completes while the leader is gone"
        );
    }
    all_inserted(&mut sim, &tokens);
    assert_eq!(sim.table_info(ids[2], T).unwrap().leader, "n1");
    sim.run_for(Duration::from_millis(200));
    let order = values_seen(&sim, ids[1], "s", from);
    assert_eq!(order.len(), tokens.len(), "{order:?}");
    assert_eq!(values_seen(&sim, ids[2], "s", from), order);
    for id in &ids[1..] {
        let records = sim.table_records(*id, T).unwrap();
        assert_eq!(records[0].version.origin, table::origin_of("n1"));
        assert_eq!(Some(&records[0].value), order.last());
    }
}

#[test]
fn insert_new_fails_clearly_when_the_leader_stays_unreachable() {
    let (mut sim, ids) = joined_set(3, 6);
    sim.partition(&[ids[2]], &[ids[0], ids[1]]);
    let op = LeaderOp::InsertNew {
        key: b("lock"),
        value: b("v"),
    };
    leader(&mut sim, ids[2], 1, op, Duration::from_millis(2500));
    match wait_done(&mut sim, 1, Duration::from_secs(5)) {
        Err(TableError::LeaderUnavailable { attempts, .. }) => assert!(attempts >= 2),
        other => panic!("expected LeaderUnavailable, got {other:?}"),
    }
}

#[test]
fn writes_made_while_paused_are_applied_in_order_on_unpause() {
    let (mut sim, ids) = joined_set(2, 7);
    let pause = table::Input::Pause {
        token: CALL,
        table: T.into(),
        pause: 9,
    };
    sim.table(ids[0], pause).unwrap();
    assert_eq!(answer(&sim, ids[0], CALL), Some(Ok(Reply::Paused)));
    // A subscriber on ids[1]: its replica reports changes.
    let store = sim.table_store(ids[1], T).unwrap();
    store.write().unwrap().watched = true;
    for (i, v) in ["1", "2", "3"].iter().enumerate() {
        put(&mut sim, ids[0], i as u64 + 1, "k", v);
    }
    sim.run_for(Duration::from_millis(200));
    assert!(contents(&sim, ids[0]).is_empty(), "paused: nothing applied");
    assert!(sim.table_info(ids[0], T).unwrap().paused);
    let unpause = table::Input::Unpause {
        table: T.into(),
        pause: 9,
    };
    sim.table(ids[0], unpause).unwrap();
    wait_done(&mut sim, 3, Duration::from_secs(1)).expect("written");
    for id in &ids {
        assert_eq!(contents(&sim, *id), vec![(b("k"), b("3"))]);
    }
    let seen: Vec<Bytes> = sim
        .table_outputs
        .iter()
        .filter(|(at, _)| *at == ids[1])
        .filter_map(|(_, o)| match o {
            table::Output::Changed { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .flatten()
        .filter_map(|c| c.new)
        .collect();
    assert_eq!(seen, vec![b("1"), b("2"), b("3")]);
}

/// Any interleaving of writes (from every node, to overlapping keys, during the split, the
/// heal and the join) ends with identical replicas. One write in five is a batch large enough
/// that the writer applies it only after sending it (`Tables::settle`, which the simulator
/// never calls: the next input does).
#[test]
fn any_interleaving_of_writes_and_a_join_ends_with_identical_replicas() {
    let mut secessions = 0;
    for seed in 0..24u64 {
        // Slow detection (500 ms heartbeats, no shortened suspicion): some down verdicts land
        // after the heal, so the repair path runs.
        let (mut sim, ids) = cluster_with(4, 100 + seed, |c| {
            let m = &mut c.membership;
            m.heartbeat_interval = Duration::from_millis(500);
            m.detector.expected_interval = m.heartbeat_interval;
            m.detector.acceptable_pause = Duration::from_millis(500);
            m.probe_timeout = Duration::from_millis(500);
            m.suspicion_min = m.suspicion_timeout;
        });
        let mut rng = SmallRng::seed_from_u64(seed);
        let spec = TableSpec {
            conflict: if seed % 2 == 0 { Some(concat()) } else { None },
            ..TableSpec::set()
        };
        let (left, right) = (ids[..2].to_vec(), ids[2..].to_vec());
        sim.partition(&left, &right);
        sim.run_until(Duration::from_secs(20), |s| {
            left.iter().all(|a| {
                right
                    .iter()
                    .all(|b| s.status(*a, *b) != Some(Status::Alive))
            })
        })
        .expect("split");
        create(&mut sim, &ids, &spec);
        let mut token = 0;
        for step in 0..120 {
            if step == 40 {
                sim.heal();
            }
            let id = ids[rng.gen_range(0..ids.len())];
            token += 1;
            // 16 records or more: left for `settle` (unless a delete_object is among them).
            let records = if rng.gen_range(0..5) == 0 {
                16 + rng.gen_range(0..8)
            } else {
                1
            };
            let ops = (0..records)
                .map(|i| {
                    let key = format!("k{}", rng.gen_range(0..8));
                    let value = format!("{step}.{i}");
                    // In a batch, a delete_object now and then (most batches have none).
                    let kind = match rng.gen_range(0..if records > 1 { 40 } else { 10 }) {
                        0..=6 => 0,
                        7 | 8 => 1,
                        9 => 2,
                        10..=31 => 0,
                        _ if records > 1 && rng.gen_range(0..8) == 0 => 2,
                        _ => 1,
                    };
                    match kind {
                        0 => WriteOp::Insert(b(&key), b(&value)),
                        1 => WriteOp::Delete(b(&key)),
                        _ => WriteOp::DeleteObject(b(&key), b(&format!("{}.0", step - 1))),
                    }
                })
                .collect();
            write(&mut sim, id, token, ops);
            sim.run_for(Duration::from_millis(rng.gen_range(0..60)));
        }
        let written = |s: &Sim| (1..=token).all(|t| done(s, t).is_some());
        sim.run_until(Duration::from_secs(60), |s| {
            written(s) && all_joined(s, &ids) && identical(s, &ids)
        })
        .unwrap_or_else(|| {
            for id in &ids {
                eprintln!("{:?}", sim.table_info(*id, T));
            }
            for (at, o) in &sim.table_outputs {
                if matches!(o, table::Output::Merged { .. } | table::Output::Down { .. }) {
                    eprintln!("{at} {o:?}");
                }
            }
            panic!(
                "seed {seed}: replicas differ: {:?}",
                ids.iter().map(|i| contents(&sim, *i)).collect::<Vec<_>>()
            )
        });
        let oks = (1..=token)
            .filter(|t| matches!(done(&sim, *t), Some(Ok(Reply::Written))))
            .count();
        assert_eq!(oks, token as usize, "seed {seed}: every write succeeds");
        secessions += sim.by_kind.get("table.forget").copied().unwrap_or(0);
    }
    // Late down verdicts right after the heal leave some replicas dropping others: such
    // inconsistent views are repaired (by secession and re-merge) in some of these runs.
    assert!(secessions > 0, "the repair path ran");
}

/// A replica restarted faster than failure detection comes back empty, under a new join id,
/// while its peers still count it: the views are repaired and it gets every record.
#[test]
fn a_replica_restarted_before_anyone_noticed_catches_up() {
    let (mut sim, ids) = joined_set(3, 8);
    put(&mut sim, ids[0], 1, "before", "1");
    wait_done(&mut sim, 1, Duration::from_secs(1)).expect("written");
    sim.restart(ids[2]);
    create(&mut sim, &ids[2..], &TableSpec::set());
    put(&mut sim, ids[1], 2, "after", "2");
    sim.run_until(Duration::from_secs(30), |s| {
        all_joined(s, &ids) && identical(s, &ids) && contents(s, ids[2]).len() == 2
    })
    .unwrap_or_else(|| {
        panic!(
            "the restarted replica did not catch up: {:?} {:?}",
            ids.iter().map(|i| contents(&sim, *i)).collect::<Vec<_>>(),
            ids.iter().map(|i| members(&sim, *i)).collect::<Vec<_>>()
        )
    });
}
