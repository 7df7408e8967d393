//! Membership behaviour, checked on the deterministic simulator.

use std::time::Duration;

use ensemble_proto::membership::Input;
use ensemble_proto::{EventKind, Status};
use ensemble_sim::{NodeId, Sim, SimConfig};

fn cluster(n: usize, config: SimConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(config);
    let first = sim.add_node("n0", &[]);
    let mut ids = vec![first];
    for i in 1..n {
        ids.push(sim.add_node(&format!("n{i}"), &[first]));
    }
    let t = sim.run_until(Duration::from_secs(30), |s| s.all_see(&ids, Status::Alive));
    assert!(t.is_some(), "{n} nodes did not converge");
    (sim, ids)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn twenty_nodes_converge_quickly() {
    let (sim, _) = cluster(20, SimConfig::default());
    assert!(sim.elapsed() < secs(2), "took {:?}", sim.elapsed());
}

#[test]
fn a_join_storm_pays_about_one_handshake_per_connection() {
    // Members learn of each other from the same gossip; without the smaller name dialling
    // first, nearly every pair dialled both ways and paid two handshakes for one connection.
    let (mut sim, _) = cluster(32, SimConfig::default());
    sim.run_for(secs(5));
    let pairs = 32 * 31 / 2;
    assert_eq!(sim.connections(), pairs);
    let ratio = sim.handshakes as f64 / pairs as f64;
    assert!(
        ratio < 1.2,
        "{} handshakes for {pairs} connections",
        sim.handshakes
    );
}

#[test]
fn a_crash_is_detected_by_everyone_without_false_positives() {
    let (mut sim, ids) = cluster(10, SimConfig::default());
    sim.run_for(secs(5));
    sim.crash(ids[3]);
    let t = sim
        .run_until(secs(10), |s| s.all_see(&[ids[3]], Status::Down))
        .expect("crash detected");
    // Every survivor's redial is refused right after the connection closed: proof enough.
    assert!(t < Duration::from_millis(100), "crash took {t:?} to detect");
    let others: Vec<NodeId> = ids.iter().copied().filter(|i| *i != ids[3]).collect();
    sim.run_for(secs(20));
    assert!(
        sim.all_see(&others, Status::Alive),
        "a healthy node was marked down"
    );
}

#[test]
fn in_a_partial_view_a_crash_reaches_every_node_within_one_hold_however_many_hops_away() {
    // 400 nodes keep a partial view: most survivors are several overlay hops from the crashed
    // node and hear of it by flood, each holding the `down` for `probe_timeout` (it has no
    // evidence of its own). The holds along the way overlap: the last node to hear of it is
    // no later than one hold (and a tick) after the first, not one hold per hop.
    let n = 400;
    let config = SimConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(5),
        seed: 11,
        ..SimConfig::default()
    };
    let hold = config.membership.probe_timeout;
    let tick = config.membership.tick_interval;
    let mut sim = Sim::formed(config, n);
    sim.run_for(secs(3));
    let victim = n / 2;
    let at = sim.elapsed();
    sim.crash(victim);
    let seen = sim.run_until(secs(10), |s| s.all_see(&[victim], Status::Down));
    assert!(seen.is_some(), "every survivor marks it down");
    let delays: Vec<Duration> = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down)
        .inspect(|e| assert_eq!(e.target, victim, "no false positive"))
        .map(|e| e.at - at)
        .collect();
    assert_eq!(delays.len(), n - 1);
    let slowest = delays.iter().max().unwrap();
    assert!(
        *slowest <= hold + tick + Duration::from_millis(100),
        "slowest observer after {slowest:?}"
    );
}

#[test]
fn without_down_on_refused_a_crash_waits_out_the_suspicion() {
    let mut config = SimConfig::default();
    config.membership.down_on_refused = false;
    let (mut sim, ids) = cluster(10, config);
    sim.run_for(secs(5));
    sim.crash(ids[3]);
    let t = sim
        .run_until(secs(10), |s| s.all_see(&[ids[3]], Status::Down))
        .expect("crash detected");
    let floor = SimConfig::default().membership.suspicion_min;
    assert!(t >= floor, "down after {t:?}, before the suspicion ran out");
    assert!(t < secs(2), "crash took {t:?} to detect");
}

#[test]
fn a_node_cut_off_by_timeouts_only_is_not_declared_down_before_the_suspicion_runs_out() {
    // Dials to it time out, they are not refused: a partition or a pause is no proof.
    let (mut sim, ids) = cluster(6, SimConfig::default());
    sim.run_for(secs(5));
    let rest: Vec<NodeId> = ids[1..].to_vec();
    sim.partition(&ids[..1], &rest);
    let t = sim
        .run_until(secs(15), |s| s.all_see(&[ids[0]], Status::Down))
        .expect("the cut-off node is declared down in the end");
    // The whole suspicion path: silence, the probes' timeout, then the shortest suspicion.
    let c = SimConfig::default().membership;
    let floor = c.heartbeat_interval + c.probe_timeout + c.suspicion_min;
    assert!(
        t >= floor,
        "declared down after {t:?}: a timeout was taken as proof"
    );
    // The cut-off node's own helpers never answered, so nothing confirmed its suspicions of
    // the others: it waits the full suspicion_timeout before declaring any of them down.
    let hasty = sim.events().iter().any(|e| {
        e.observer == ids[0]
            && e.kind == EventKind::Down
            && e.at < secs(5) + floor + c.suspicion_timeout
    });
    assert!(
        !hasty,
        "the isolated node declared others down on unconfirmed suspicions"
    );
}

#[test]
fn a_hung_node_is_detected_and_refutes_when_it_resumes() {
    let (mut sim, ids) = cluster(8, SimConfig::default());
    sim.run_for(secs(10));
    let old = sim.incarnation(ids[2]).unwrap();
    sim.pause(ids[2]);
    let t = sim
        .run_until(secs(15), |s| s.all_see(&[ids[2]], Status::Down))
        .expect("hang detected");
    assert!(t < Duration::from_millis(1800), "hang took {t:?} to detect");
    sim.resume(ids[2]);
    sim.run_until(secs(10), |s| s.all_see(&ids, Status::Alive))
        .expect("resumed node back alive");
    assert!(
        sim.incarnation(ids[2]).unwrap() > old,
        "refuted by bumping its incarnation"
    );
}

#[test]
fn a_paused_node_is_declared_down_by_everyone_within_one_and_a_half_seconds() {
    let mut times = Vec::new();
    for seed in 1..=7 {
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let (mut sim, ids) = cluster(16, config);
        // Pause at a random point between two heartbeats.
        sim.run_for(secs(10) + Duration::from_millis(37 * seed));
        sim.pause(ids[5]);
        let t = sim
            .run_until(secs(10), |s| s.all_see(&[ids[5]], Status::Down))
            .expect("pause detected");
        times.push(t);
        let others: Vec<NodeId> = ids.iter().copied().filter(|i| *i != ids[5]).collect();
        assert!(
            sim.all_see(&others, Status::Alive),
            "seed {seed}: a false positive"
        );
    }
    times.sort();
    assert!(
        times[3] <= Duration::from_millis(1500),
        "median {:?} of {times:?}",
        times[3]
    );
    assert!(
        times[6] < Duration::from_millis(1800),
        "slowest {:?}",
        times[6]
    );
}

#[test]
fn an_overloaded_observer_accuses_nobody() {
    let (mut sim, ids) = cluster(10, SimConfig::default());
    sim.run_for(secs(5));
    let before: Vec<Option<u64>> = ids.iter().map(|i| sim.incarnation(*i)).collect();
    // Bursts of starvation: for 2 s out of every 5, n4 reads its sockets up to 1.5 s late and
    // its timers fire up to 150 ms late.
    let (reads, timers) = (Duration::from_millis(1500), Duration::from_millis(150));
    for _ in 0..12 {
        sim.overload(ids[4], reads, timers);
        sim.run_for(secs(2));
        sim.overload(ids[4], Duration::ZERO, Duration::ZERO);
        sim.run_for(secs(3));
    }
    let downs: Vec<_> = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down && e.target != ids[4])
        .map(|e| (e.at, sim.name(e.target).to_owned()))
        .collect();
    assert!(downs.is_empty(), "healthy members declared down: {downs:?}");
    // Nobody healthy had to refute a suspicion either (a refutation bumps the incarnation).
    for (i, id) in ids.iter().enumerate().filter(|(_, id)| **id != ids[4]) {
        assert_eq!(
            sim.incarnation(*id),
            before[i],
            "{} was suspected",
            sim.name(*id)
        );
    }
}

#[test]
fn each_node_heartbeats_only_its_monitors_in_a_full_mesh_and_a_partial_view() {
    // 24 nodes: a full mesh (23 connections each); 90: a partial view (about 2 log2(n) each).
    for n in [24, 90] {
        let (mut sim, _ids) = cluster(n, SimConfig::default());
        sim.run_for(secs(10));
        let before = sim.by_kind.get("heartbeat").copied().unwrap_or(0);
        sim.run_for(secs(30));
        let per_node_per_s = (sim.by_kind["heartbeat"] - before) as f64 / n as f64 / 30.0;
        // Four monitors (two ring neighbours each side) at one heartbeat per 300 ms: 13.3/s;
        // every connection would be 76.7/s at 24 nodes.
        let c = SimConfig::default().membership;
        let expected = (2 * c.monitor_neighbours) as f64 / c.heartbeat_interval.as_secs_f64();
        assert!(
            per_node_per_s <= expected * 1.1,
            "{n} nodes: {per_node_per_s:.1} heartbeats/s per node, expected about {expected:.1}"
        );
    }
}

#[test]
fn one_bad_link_does_not_evict_a_healthy_node() {
    let (mut sim, ids) = cluster(6, SimConfig::default());
    sim.run_for(secs(5));
    let before: Vec<Option<u64>> = ids.iter().map(|i| sim.incarnation(*i)).collect();
    // n1 and n2 cannot talk, everyone else can reach both.
    sim.partition(&[ids[1]], &[ids[2]]);
    sim.run_for(secs(30));
    for o in sim.live() {
        for i in &ids {
            assert_eq!(
                sim.status(o, *i),
                Some(Status::Alive),
                "{} at {o}",
                sim.name(*i)
            );
        }
    }
    // The helpers vouched for both ends, so no suspicion was gossiped and nobody had to refute.
    let after: Vec<Option<u64>> = ids.iter().map(|i| sim.incarnation(*i)).collect();
    assert_eq!(before, after);
}

#[test]
fn a_graceful_leave_is_left_not_down() {
    let (mut sim, ids) = cluster(5, SimConfig::default());
    sim.command(ids[4], Input::Leave);
    sim.run_for(Duration::from_millis(50));
    sim.crash(ids[4]);
    sim.run_for(secs(10));
    assert!(sim.all_see(&[ids[4]], Status::Left));
    let downs = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down)
        .count();
    assert_eq!(downs, 0);
}

#[test]
fn a_split_heals_by_itself() {
    let (mut sim, ids) = cluster(6, SimConfig::default());
    let (a, b) = ids.split_at(3);
    sim.partition(a, b);
    sim.run_until(secs(30), |s| {
        a.iter()
            .all(|x| b.iter().all(|y| s.status(*x, *y) == Some(Status::Down)))
    })
    .expect("each side marks the other down");
    sim.heal();
    let t = sim
        .run_until(secs(60), |s| s.all_see(&ids, Status::Alive))
        .expect("halves merge back");
    assert!(t < secs(25), "heal took {t:?}");
}

#[test]
fn two_nodes_that_started_alone_merge_once_they_can_talk() {
    let mut sim = Sim::new(SimConfig::default());
    let a = sim.add_node("a", &[]);
    let b = sim.add_node("b", &[a]);
    sim.crash(a);
    sim.run_for(secs(5));
    sim.restart(a);
    sim.run_until(secs(30), |s| s.all_see(&[a, b], Status::Alive))
        .expect("b keeps dialling its seed and merges with a");
}

#[test]
fn a_restarted_node_is_a_new_incarnation() {
    let (mut sim, ids) = cluster(4, SimConfig::default());
    let old = sim.incarnation(ids[1]).unwrap();
    sim.crash(ids[1]);
    sim.run_until(secs(10), |s| s.all_see(&[ids[1]], Status::Down))
        .unwrap();
    sim.run_for(secs(1));
    sim.restart(ids[1]);
    sim.run_until(secs(20), |s| s.all_see(&ids, Status::Alive))
        .expect("restarted node rejoins");
    let new = sim.incarnation(ids[1]).unwrap();
    assert!(new > old);
    assert_eq!(sim.seen(ids[0], "n1").unwrap().incarnation, new);
    let ups = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Up && e.target == ids[1] && e.incarnation == new)
        .count();
    assert_eq!(
        ups, 3,
        "every other node reports the new incarnation up once"
    );
}

#[test]
fn a_node_restarted_at_once_on_its_address_comes_back_as_a_new_incarnation_without_flapping() {
    let (mut sim, ids) = cluster(6, SimConfig::default());
    sim.run_for(secs(5));
    let old = sim.incarnation(ids[2]).unwrap();
    sim.restart(ids[2]);
    sim.run_until(secs(20), |s| s.all_see(&ids, Status::Alive))
        .expect("restarted node back alive everywhere");
    let new = sim.incarnation(ids[2]).unwrap();
    assert!(new > old);
    sim.run_for(secs(10));
    assert!(sim.all_see(&ids, Status::Alive));
    let downs_of_new = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down && e.target == ids[2] && e.incarnation == new)
        .count();
    assert_eq!(downs_of_new, 0, "the new incarnation was declared down");
    for i in &ids {
        if *i != ids[2] {
            assert_eq!(sim.seen(*i, "n2").unwrap().incarnation, new);
        }
    }
}

#[test]
fn tags_updates_reach_everyone() {
    let (mut sim, ids) = cluster(5, SimConfig::default());
    let tags = ensemble_proto::Tags::new([("role".to_string(), "db".to_string())].into()).unwrap();
    sim.command(ids[2], Input::SetTags(tags));
    sim.run_until(secs(5), |s| {
        s.live()
            .iter()
            .all(|o| s.seen(*o, "n2").unwrap().tags.get("role") == Some("db"))
    })
    .expect("tags spread");
}

#[test]
fn lossy_jittery_network_has_no_false_positives() {
    let config = SimConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(40),
        loss: 0.01,
        seed: 7,
        ..SimConfig::default()
    };
    let (mut sim, ids) = cluster(30, config);
    sim.run_for(secs(120));
    let downs = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down)
        .count();
    assert_eq!(downs, 0);
    assert!(sim.all_see(&ids, Status::Alive));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = || {
        let config = SimConfig {
            jitter: Duration::from_millis(5),
            loss: 0.02,
            seed: 42,
            ..SimConfig::default()
        };
        let (mut sim, ids) = cluster(8, config);
        sim.crash(ids[5]);
        sim.run_for(secs(10));
        let events: Vec<String> = sim.events().iter().map(|e| format!("{e:?}")).collect();
        (events, sim.messages, sim.bytes)
    };
    assert_eq!(run(), run());
}

#[test]
fn a_partial_view_keeps_its_connections_in_steady_state() {
    // Beyond the full-mesh limit, joined through one seed: the seed connections are pruned
    // once the overlay formed, and must not be redialled (that churned every prune_grace).
    let (mut sim, _) = cluster(100, SimConfig::default());
    sim.run_for(secs(15));
    let digests = |s: &Sim| s.by_kind.get("digest").copied().unwrap_or(0);
    let (before, conns) = (digests(&sim), sim.connections());
    sim.run_for(secs(20));
    // Only the periodic anti-entropy (one digest per node per 10 s, and its reply when views
    // differ) remains; a reconnect adds two digests.
    let extra = digests(&sim) - before;
    assert!(
        extra <= 100 * 2 * 2,
        "{extra} digests in 20 s: connections churn"
    );
    assert_eq!(sim.connections(), conns);
}

#[test]
fn a_removed_member_stays_removed_and_stops() {
    let (mut sim, ids) = cluster(6, SimConfig::default());
    sim.run_for(secs(3));
    let at = sim.elapsed();
    sim.command(ids[0], Input::Remove("n4".into()));
    let others: Vec<NodeId> = ids.iter().copied().filter(|i| *i != ids[4]).collect();
    let everyone_sees = |s: &Sim| {
        others
            .iter()
            .all(|o| s.status(*o, ids[4]) == Some(Status::Left))
    };
    let t = sim
        .run_until(secs(5), everyone_sees)
        .expect("removal spreads");
    assert!(t < secs(1), "took {t:?}");
    // The removed node accepted it (no refutation) and nobody brings it back.
    assert_eq!(sim.status(ids[4], ids[4]), Some(Status::Left));
    sim.run_for(secs(30));
    assert!(everyone_sees(&sim), "a removed member came back");
    let left = sim
        .events()
        .iter()
        .filter(|e| e.target == ids[4] && e.kind == EventKind::Left)
        .count();
    assert_eq!(left, others.len(), "one `left` event per other member");
    assert!(
        !sim.events()
            .iter()
            .any(|e| e.at >= at && e.target == ids[4] && e.kind == EventKind::Up),
        "never up again"
    );
}

#[test]
fn two_nodes_that_dial_each_other_at_once_keep_the_connection_the_smaller_name_dialled() {
    let mut sim = Sim::new(SimConfig {
        seed: 3,
        ..SimConfig::default()
    });
    let a = sim.add_node("a", &[]);
    let b = sim.add_node("b", &[]);
    sim.run_for(secs(1));
    // b's dial completes first (same instant, queued first); the runtime's rule still keeps
    // the connection a dialled, at both ends.
    sim.join(b, a);
    sim.join(a, b);
    sim.run_for(secs(2));
    assert_eq!(sim.connections(), 1);
    assert_eq!(sim.dialer(a, b), Some(a));
    assert_eq!(sim.peers_of(a), vec!["b"]);
    assert_eq!(sim.peers_of(b), vec!["a"]);
    assert!(sim.all_see(&[a, b], Status::Alive));
    // And the one connection carries everything from then on.
    sim.run_for(secs(10));
    assert_eq!(sim.connections(), 1);
    assert_eq!(sim.dialer(a, b), Some(a));
}

#[test]
fn a_node_isolated_and_healed_gets_no_one_else_marked_down() {
    // n2 is cut off from everyone: it marks all four down. When the cut heals, it tells the
    // others what it saw; they can all reach each other, so none of them is marked down by
    // anyone but n2.
    for seed in 0..8 {
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let (mut sim, ids) = cluster(5, config);
        sim.run_for(secs(3));
        let lonely = ids[2];
        let rest: Vec<NodeId> = ids.iter().copied().filter(|i| *i != lonely).collect();
        sim.partition(&[lonely], &rest);
        sim.run_until(secs(30), |s| {
            rest.iter()
                .all(|x| s.status(lonely, *x) == Some(Status::Down))
        })
        .expect("the lonely node marks everyone down");
        let cut_at = sim.elapsed();
        sim.run_for(secs(2));
        sim.heal();
        sim.run_until(secs(60), |s| s.all_see(&ids, Status::Alive))
            .expect("everyone alive again");
        sim.run_for(secs(5));
        let wrong: Vec<_> = sim
            .events()
            .iter()
            .filter(|e| e.at > cut_at && e.kind == EventKind::Down)
            .filter(|e| e.observer != lonely && e.target != lonely)
            .map(|e| (e.at, e.observer, e.target))
            .collect();
        assert!(wrong.is_empty(), "seed {seed}: {wrong:?}");
    }
}
