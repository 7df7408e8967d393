//! Singletons under the simulator: the real activators over the real membership, with
//! partitions and crashes on a virtual clock (a failing seed reproduces).

use std::collections::BTreeMap;
use std::time::Duration;

use ensemble_proto::singleton::{self, Role, ShutdownReason, SingletonEvent, SingletonSpec};
use ensemble_sim::{NodeId, Sim};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

const S: &str = "billing-cron";

fn cluster(n: usize, seed: u64, spec: SingletonSpec) -> (Sim, Vec<NodeId>) {
    let (mut sim, ids) = common::cluster(n, seed);
    for id in &ids {
        let register = singleton::Input::Register {
            token: 1,
            name: S.into(),
            spec: spec.clone(),
        };
        sim.singleton(*id, register).unwrap();
        assert_eq!(sim.singleton_answers.last(), Some(&(*id, 1, Ok(()))));
    }
    (sim, ids)
}

fn leaders(sim: &Sim, ids: &[NodeId]) -> Vec<(NodeId, u64)> {
    ids.iter()
        .filter_map(|id| {
            let i = sim.singleton_info(*id, S)?;
            (i.role == Role::Leader).then_some((*id, i.epoch))
        })
        .collect()
}

fn one_leader(sim: &mut Sim, ids: &[NodeId], within: Duration) -> (NodeId, u64) {
    sim.run_until(within, |s| {
        let l = leaders(s, ids);
        l.len() == 1
            && ids.iter().all(|id| {
                s.singleton_info(*id, S)
                    .is_some_and(|i| i.leader.as_deref() == Some(s.name(l[0].0)))
            })
    })
    .unwrap_or_else(|| panic!("one leader everyone follows: {:?}", leaders(sim, ids)));
    leaders(sim, ids)[0]
}

/// Leadership intervals per node, from the events: (start, end or None while it lasts).
fn intervals(sim: &Sim) -> Vec<(NodeId, Duration, Option<Duration>, u64)> {
    let mut open: BTreeMap<NodeId, (Duration, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in sim.singleton_events.iter().filter(|e| e.name == S) {
        match &e.event {
            SingletonEvent::NowLeader { epoch } => {
                open.insert(e.node, (e.at, *epoch));
            }
            SingletonEvent::Shutdown { .. } => {
                if let Some((start, epoch)) = open.remove(&e.node) {
                    out.push((e.node, start, Some(e.at), epoch));
                }
            }
            SingletonEvent::NowFollower { .. } => {}
        }
    }
    out.extend(open.into_iter().map(|(n, (s, ep))| (n, s, None, ep)));
    out
}

#[test]
fn a_crashed_leader_is_replaced_after_detection_at_a_higher_epoch() {
    let (mut sim, ids) = cluster(5, 1, SingletonSpec::default());
    let (leader, epoch) = one_leader(&mut sim, &ids, Duration::from_secs(5));
    assert_eq!(sim.name(leader), "n0", "the lowest name is preferred");
    let crashed_at = sim.elapsed();
    sim.crash(leader);
    let rest: Vec<NodeId> = ids.iter().copied().filter(|i| *i != leader).collect();
    let (next, next_epoch) = one_leader(&mut sim, &rest, Duration::from_secs(10));
    assert_eq!(sim.name(next), "n1");
    assert!(next_epoch > epoch);
    let took = sim.elapsed() - crashed_at;
    assert!(took < Duration::from_secs(5), "took over after {took:?}");
}

#[test]
fn a_leader_that_stops_hands_over_without_waiting_for_detection() {
    let (mut sim, ids) = cluster(3, 2, SingletonSpec::default());
    let (leader, _) = one_leader(&mut sim, &ids, Duration::from_secs(5));
    let at = sim.elapsed();
    sim.singleton(leader, singleton::Input::Unregister(S.into()))
        .unwrap();
    let rest: Vec<NodeId> = ids.iter().copied().filter(|i| *i != leader).collect();
    one_leader(&mut sim, &rest, Duration::from_secs(5));
    let took = sim.elapsed() - at;
    assert!(took < Duration::from_millis(50), "hand-over took {took:?}");
}

#[test]
fn after_a_split_heals_one_leader_remains_and_the_other_hears_name_conflict() {
    let (mut sim, ids) = cluster(4, 3, SingletonSpec::default());
    one_leader(&mut sim, &ids, Duration::from_secs(5));
    let (left, right) = (ids[..2].to_vec(), ids[2..].to_vec());
    sim.partition(&left, &right);
    sim.run_until(Duration::from_secs(20), |s| leaders(s, &ids).len() == 2)
        .expect("each side elects a leader without the majority rule");
    let two = leaders(&sim, &ids);
    let loser = two.iter().min_by_key(|l| l.1).unwrap().0;
    let winner = two.iter().max_by_key(|l| l.1).unwrap().0;
    sim.heal();
    let (kept, _) = one_leader(&mut sim, &ids, Duration::from_secs(20));
    assert_eq!(kept, winner, "the higher epoch keeps leading");
    let conflict = sim.singleton_events.iter().any(|e| {
        e.node == loser
            && e.event
                == SingletonEvent::Shutdown {
                    reason: ShutdownReason::NameConflict,
                }
    });
    assert!(conflict, "the other leader hears name_conflict");
}

/// The majority rule over random partition schedules: never two leaders at once, epochs
/// strictly increasing, and one leader again once everything heals.
#[test]
fn with_the_majority_rule_random_partitions_never_show_two_leaders() {
    let spec = SingletonSpec {
        majority_of: Some(5),
    };
    let mut leaderships = 0;
    for seed in 0..100u64 {
        let (mut sim, ids) = cluster(5, 1000 + seed, spec.clone());
        one_leader(&mut sim, &ids, Duration::from_secs(5));
        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..6 {
            if rng.gen_bool(0.3) {
                sim.heal();
            } else {
                let (a, b): (Vec<NodeId>, Vec<NodeId>) =
                    ids.iter().partition(|_| rng.gen_bool(0.5));
                sim.heal();
                sim.partition(&a, &b);
            }
            sim.run_for(Duration::from_millis(rng.gen_range(500..6000)));
        }
        sim.heal();
        one_leader(&mut sim, &ids, Duration::from_secs(30));
        let spans = intervals(&sim);
        leaderships += spans.len();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                let overlap =
                    a.1 < b.2.unwrap_or(Duration::MAX) && b.1 < a.2.unwrap_or(Duration::MAX);
                assert!(!overlap, "seed {seed}: two leaders at once: {a:?} {b:?}");
            }
        }
        let mut by_start = spans.clone();
        by_start.sort_by_key(|s| s.1);
        assert!(
            by_start.windows(2).all(|w| w[0].3 < w[1].3),
            "seed {seed}: epochs rise: {by_start:?}"
        );
    }
    assert!(
        leaderships > 150,
        "the schedules changed leaders: {leaderships}"
    );
}
