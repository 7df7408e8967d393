//! Unit tests of the membership state machine, driven input by input.

use super::*;
use crate::wire::PeerInfo;
use std::time::Duration;

fn member(name: &str, port: u16, incarnation: u64, status: Status) -> Arc<Member> {
    Arc::new(Member {
        name: name.into(),
        addr: ([127, 0, 0, 1], port).into(),
        incarnation,
        status,
        tags: Tags::default(),
    })
}

fn node(now: Instant) -> Membership {
    Membership::new(
        Config::default(),
        (*member("me", 1, 100, Status::Alive)).clone(),
        [],
        1,
        now,
    )
}

fn connect(m: &mut Membership, now: Instant, name: &str, port: u16) {
    let peer = PeerInfo {
        name: name.into(),
        addr: ([127, 0, 0, 1], port).into(),
        incarnation: 5,
        instance: 1,
        role: None,
    };
    m.handle(now, Input::Connected { peer, dialed: None });
    let members = vec![member(name, port, 5, Status::Alive)];
    m.handle(
        now,
        Input::Message {
            from: name.into(),
            msg: MembershipMsg::Gossip { members },
        },
    );
}

fn drain(m: &mut Membership) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

#[test]
fn an_absurd_incarnation_rumour_is_dropped() {
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "peer", 2);
    let evil = vec![
        member("me", 1, u64::MAX, Status::Suspect),
        member("x", 3, u64::MAX, Status::Alive),
    ];
    m.handle(
        t0,
        Input::Message {
            from: "peer".into(),
            msg: MembershipMsg::Gossip { members: evil },
        },
    );
    assert_eq!(
        m.local().incarnation,
        100,
        "no refutation of an invalid rumour"
    );
    assert!(m.member("x").is_none());
    assert_eq!(m.rejected(), 2);
    // A valid suspicion still gets refuted, and near the limit it saturates instead of
    // overflowing.
    let near = vec![member(
        "me",
        1,
        crate::member::MAX_INCARNATION,
        Status::Suspect,
    )];
    m.handle(
        t0,
        Input::Message {
            from: "peer".into(),
            msg: MembershipMsg::Gossip { members: near },
        },
    );
    assert_eq!(m.local().incarnation, crate::member::MAX_INCARNATION + 1);
    assert_eq!(m.local().status, Status::Alive);
}

#[test]
fn tombstones_of_unknown_members_are_not_adopted() {
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "peer", 2);
    let old = vec![
        member("gone", 9, 7, Status::Left),
        member("dead", 8, 7, Status::Down),
    ];
    let msg = MembershipMsg::Sync { members: old };
    m.handle(
        t0,
        Input::Message {
            from: "peer".into(),
            msg,
        },
    );
    assert!(m.member("gone").is_none() && m.member("dead").is_none());
    // A known member's tombstone is taken as usual.
    let left = vec![member("peer", 2, 5, Status::Left)];
    m.handle(
        t0,
        Input::Message {
            from: "peer".into(),
            msg: MembershipMsg::Gossip { members: left },
        },
    );
    assert_eq!(m.member("peer").unwrap().status, Status::Left);
}

#[test]
fn helpers_saying_unreachable_do_not_overrule_a_pending_direct_ping() {
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "a", 2);
    connect(&mut m, t0, "b", 3);
    drain(&mut m);
    // `a` goes silent; after the phi threshold this node probes it.
    let later = t0 + Duration::from_secs(3);
    m.handle(
        later,
        Input::Message {
            from: "b".into(),
            msg: MembershipMsg::Heartbeat,
        },
    );
    m.handle(later, Input::Tick);
    let out = drain(&mut m);
    let seq = out
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to,
                msg: MembershipMsg::Ping { seq },
            } if to == "a" => Some(*seq),
            _ => None,
        })
        .expect("a direct ping to the silent member");
    let nack = MembershipMsg::ProbeResult {
        seq,
        target: "a".into(),
        reachable: false,
    };
    m.handle(
        later,
        Input::Message {
            from: "b".into(),
            msg: nack,
        },
    );
    assert_eq!(
        m.member("a").unwrap().status,
        Status::Alive,
        "still waiting for the ping"
    );
    m.handle(
        later,
        Input::Message {
            from: "a".into(),
            msg: MembershipMsg::Ack { seq },
        },
    );
    m.handle(later + Duration::from_secs(2), Input::Tick);
    assert_eq!(
        m.member("a").unwrap().status,
        Status::Alive,
        "the ack cleared it"
    );
}

/// Two nodes whose large views differ in a few members exchange about those, not whole
/// buckets: anti-entropy narrows a differing bucket down to its fine ranges first.
#[test]
fn a_large_view_sends_only_the_fine_ranges_that_differ() {
    let t0 = Instant::now();
    let new = |name: &str, port| {
        let local = (*member(name, port, 100, Status::Alive)).clone();
        Membership::new(Config::default(), local, [], 1, t0)
    };
    let (mut a, mut b) = (new("a", 1), new("b", 2));
    let mut common = vec![
        member("a", 1, 100, Status::Alive),
        member("b", 2, 100, Status::Alive),
    ];
    common.extend((0..1000).map(|i| member(&format!("m{i}"), 1000 + i, 5, Status::Alive)));
    for node in [&mut a, &mut b] {
        let msg = MembershipMsg::Sync {
            members: common.clone(),
        };
        node.handle(
            t0,
            Input::Message {
                from: "seed".into(),
                msg,
            },
        );
    }
    let extra: Vec<_> = (0..3)
        .map(|i| member(&format!("x{i}"), 3000 + i, 5, Status::Alive))
        .collect();
    let msg = MembershipMsg::Sync { members: extra };
    a.handle(
        t0,
        Input::Message {
            from: "seed".into(),
            msg,
        },
    );
    b.handle(
        t0,
        Input::Message {
            from: "seed".into(),
            msg: MembershipMsg::Sync {
                members: vec![member("m7", 1007, 6, Status::Alive)],
            },
        },
    );
    drain(&mut a);
    drain(&mut b);
    assert_ne!(a.view.digest(), b.view.digest());

    // b asks a for a push-pull, as at a new connection; carry messages until both are quiet.
    let buckets = b.view.bucket_digests().to_vec();
    let msg = MembershipMsg::Digest {
        buckets,
        reply: true,
    };
    a.handle(
        t0,
        Input::Message {
            from: "b".into(),
            msg,
        },
    );
    let (mut synced, mut kinds) = (0, Vec::new());
    loop {
        let mut quiet = true;
        for (from, to) in [("a", "b"), ("b", "a")] {
            let (src, dst) = if from == "a" {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            for o in drain(src) {
                let Output::Send { to: dest, msg } = o else {
                    continue;
                };
                assert_eq!(dest, to);
                quiet = false;
                kinds.push(msg.kind());
                if let MembershipMsg::Sync { members } = &msg {
                    synced += members.len();
                }
                dst.handle(
                    t0,
                    Input::Message {
                        from: from.into(),
                        msg,
                    },
                );
            }
        }
        if quiet {
            break;
        }
    }
    assert_eq!(a.view.digest(), b.view.digest(), "the views agree");
    assert!(kinds.contains(&"fine_digest"), "{kinds:?}");
    assert!(
        synced <= 20,
        "{synced} members sent for 4 differences: {kinds:?}"
    );
    assert!(a.member("x2").is_some() && b.member("x2").is_some());
    assert_eq!(a.member("m7").unwrap().incarnation, 6);
}

/// A malformed fine digest is counted and dropped.
#[test]
fn a_malformed_fine_digest_is_rejected() {
    let t0 = Instant::now();
    let mut m = node(t0);
    let bad = [
        (vec![1, 1], vec![0; 2], vec![0; 128]),
        (vec![64], vec![0], vec![0; 64]),
        (vec![3], vec![0], vec![0; 10]),
        (vec![3], vec![], vec![0; 64]),
    ];
    for (buckets, digests, fine) in bad {
        let msg = MembershipMsg::FineDigest {
            buckets,
            digests,
            fine,
            reply: true,
        };
        m.handle(
            t0,
            Input::Message {
                from: "x".into(),
                msg,
            },
        );
    }
    assert_eq!(m.rejected(), 4);
    assert!(drain(&mut m)
        .iter()
        .all(|o| !matches!(o, Output::Send { .. })));
}

/// The runtime dials a joined address itself at once: the core counts that dial as its own and
/// opens no second connection (two from one node could each be kept by a different end and
/// both be closed), but it dials the address again if that dial fails.
#[test]
fn a_join_is_dialled_once_and_retried_after_a_failure() {
    let t0 = Instant::now();
    let mut m = node(t0);
    drain(&mut m);
    let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
    m.handle(t0, Input::Join { addr });
    let dials = |outs: Vec<Output>| {
        outs.into_iter()
            .filter(|o| matches!(o, Output::Dial { addr: a } if *a == addr))
            .count()
    };
    assert_eq!(dials(drain(&mut m)), 0, "dialled a second time");
    m.handle(t0 + Duration::from_millis(100), Input::Tick);
    assert_eq!(dials(drain(&mut m)), 0, "dialled while the first dial runs");
    m.handle(
        t0 + Duration::from_millis(150),
        Input::DialFailed {
            addr,
            no_listener: false,
        },
    );
    let mut later = t0 + Duration::from_millis(150);
    let mut redialled = 0;
    for _ in 0..100 {
        later += Duration::from_millis(100);
        m.handle(later, Input::Tick);
        redialled += dials(drain(&mut m));
    }
    assert!(redialled >= 1, "the seed is retried after the failed dial");
}

/// Two members that learn of each other from the same gossip would dial each other at once:
/// the one with the larger name ("me" > "a") waits a few ticks for the other's dial, but
/// redials at once a connection that was lost.
#[test]
fn a_smaller_name_is_left_to_dial_first_but_a_lost_connection_is_redialled_at_once() {
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "peer", 2);
    drain(&mut m);
    let a: SocketAddr = ([127, 0, 0, 1], 3).into();
    let dials = |outs: Vec<Output>| {
        outs.into_iter()
            .filter(|o| matches!(o, Output::Dial { addr } if *addr == a))
            .count()
    };
    let members = vec![member("a", 3, 5, Status::Alive)];
    let from = "peer".to_string();
    let msg = MembershipMsg::Gossip { members };
    m.handle(t0, Input::Message { from, msg });
    let mut now = t0;
    let mut first = None;
    for _ in 0..10 {
        if dials(drain(&mut m)) > 0 {
            first = Some(now);
            break;
        }
        now += Duration::from_millis(100);
        m.handle(now, Input::Tick);
    }
    let waited = first.expect("never dialled a") - t0;
    assert!(
        waited >= Duration::from_millis(300),
        "dialled after {waited:?}"
    );
    // a's dial had not come: this one connects, then the connection is lost.
    let peer = PeerInfo {
        name: "a".into(),
        addr: a,
        incarnation: 5,
        instance: 1,
        role: None,
    };
    m.handle(
        now,
        Input::Connected {
            peer,
            dialed: Some(a),
        },
    );
    drain(&mut m);
    m.handle(now, Input::Disconnected { name: "a".into() });
    assert_eq!(
        dials(drain(&mut m)),
        1,
        "a lost connection is redialled at once"
    );
}

/// "zed" (port 9) connects; `dialed`: this side dialled it. Returns the digests sent to zed.
fn zed_connects(m: &mut Membership, now: Instant, dialed: bool) -> usize {
    let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
    let peer = PeerInfo {
        name: "zed".into(),
        addr,
        incarnation: 5,
        instance: 1,
        role: None,
    };
    let dialed = dialed.then_some(addr);
    m.handle(now, Input::Connected { peer, dialed });
    drain(m)
        .into_iter()
        .filter(|o| {
            matches!(o, Output::Send { to, msg: MembershipMsg::Digest { reply: true, .. } }
                if to == "zed")
        })
        .count()
}

#[test]
fn a_dial_that_comes_up_after_the_peers_own_starts_the_push_pull() {
    // "me" and "zed" dial each other at once; zed's dial is accepted here first (no digest:
    // the dialer starts it), then this side's own dial comes up, the one both ends keep.
    let now = Instant::now();
    let mut m = node(now);
    assert_eq!(zed_connects(&mut m, now, false), 0);
    assert_eq!(
        zed_connects(&mut m, now, true),
        1,
        "zed's own digest went on the connection it dropped: this side must ask"
    );
    // Once zed is a member, another connection this side dialled starts nothing.
    let members = vec![member("zed", 9, 5, Status::Alive)];
    m.handle(
        now,
        Input::Message {
            from: "zed".into(),
            msg: MembershipMsg::Gossip { members },
        },
    );
    drain(&mut m);
    assert_eq!(zed_connects(&mut m, now, true), 0);
}

#[test]
fn a_node_that_was_paused_does_not_take_its_own_silence_for_its_peers() {
    // `me` hears `a` and `b`, then is stopped for 8 s. The first thing it reads on resuming is
    // `a`'s word, sent meanwhile, that `b` is down: `b` only looks silent because `me` was
    // not listening, so the accusation is held for `b` to refute, not applied at once.
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "a", 2);
    connect(&mut m, t0, "b", 3);
    m.handle(t0, Input::Tick);
    drain(&mut m);
    let resumed = t0 + Duration::from_secs(8);
    m.handle(
        resumed,
        Input::Message {
            from: "a".into(),
            msg: MembershipMsg::Gossip {
                members: vec![member("b", 3, 5, Status::Down)],
            },
        },
    );
    assert_eq!(m.member("b").unwrap().status, Status::Alive);
    // `b` refutes in time: the accusation is never applied.
    m.handle(
        resumed + Duration::from_millis(10),
        Input::Message {
            from: "b".into(),
            msg: MembershipMsg::Gossip {
                members: vec![member("b", 3, 6, Status::Alive)],
            },
        },
    );
    m.handle(resumed + Duration::from_secs(2), Input::Tick);
    let b = m.member("b").unwrap();
    assert_eq!((b.status, b.incarnation), (Status::Alive, 6));
}

#[test]
fn a_dial_that_failed_before_a_member_was_heard_alive_is_no_evidence_against_it() {
    // The dial to `b` failed (a cut, since healed); then `b` was heard alive at a newer
    // incarnation. A late accusation of `b` (from a node that was cut off itself) is held for
    // `b` to refute, not applied at once on the strength of the old failed dial.
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "a", 2);
    connect(&mut m, t0, "b", 3);
    m.handle(t0, Input::Tick);
    m.handle(t0, Input::Disconnected { name: "b".into() });
    let b_addr = ([127, 0, 0, 1], 3).into();
    let t1 = t0 + Duration::from_millis(50);
    m.handle(
        t1,
        Input::DialFailed {
            addr: b_addr,
            no_listener: false,
        },
    );
    let gossip = |members| Input::Message {
        from: "a".into(),
        msg: MembershipMsg::Gossip { members },
    };
    m.handle(t1, gossip(vec![member("b", 3, 6, Status::Alive)]));
    drain(&mut m);
    m.handle(t1, gossip(vec![member("b", 3, 6, Status::Down)]));
    assert_eq!(
        m.member("b").unwrap().status,
        Status::Alive,
        "held, not applied"
    );
}

/// The members of every gossip message `outputs` sends to `to`.
fn gossiped_to<'a>(outputs: &'a [Output], to: &str) -> Vec<&'a Member> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to: t,
                msg: MembershipMsg::Gossip { members },
            } if t == to => Some(members.iter().map(|m| &**m)),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn an_accusation_held_for_want_of_evidence_is_passed_on_at_once() {
    // `me` hears from `a` that `z`, a member it is not connected to, is down. It has no
    // evidence of its own, so it holds the accusation for `probe_timeout` before applying it;
    // but it passes it on at once, so that the next node's hold runs alongside this one's
    // instead of after it (one hold per hop would add `probe_timeout` per hop of a flood).
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "a", 2);
    connect(&mut m, t0, "b", 3);
    let z = |from: &str, status| Input::Message {
        from: from.into(),
        msg: MembershipMsg::Gossip {
            members: vec![member("z", 9, 5, status)],
        },
    };
    m.handle(t0, z("a", Status::Alive));
    m.handle(t0, Input::Tick);
    drain(&mut m);
    let t1 = t0 + Duration::from_millis(10);
    m.handle(t1, z("a", Status::Down));
    let out = drain(&mut m);
    assert_eq!(m.member("z").unwrap().status, Status::Alive, "held");
    let to_b = gossiped_to(&out, "b");
    assert!(
        to_b.iter()
            .any(|z| z.name == "z" && z.status == Status::Down),
        "passed on to b at once: {out:?}"
    );
    assert!(gossiped_to(&out, "a").is_empty(), "not back to its sender");
    // A copy from `b` joins the held one and goes nowhere.
    m.handle(t1, z("b", Status::Down));
    assert!(gossiped_to(&drain(&mut m), "a").is_empty());
    // Applied when the hold is over (ticks on time), and not sent again.
    let mut out = Vec::new();
    for i in 1..=5 {
        m.handle(t0 + Duration::from_millis(100 * i), Input::Tick);
        out.extend(drain(&mut m));
    }
    assert_eq!(m.member("z").unwrap().status, Status::Down);
    assert!(
        ["a", "b"]
            .iter()
            .all(|p| gossiped_to(&out, p).iter().all(|z| z.name != "z")),
        "{out:?}"
    );
}

#[test]
fn a_suspicion_reports_who_made_it_this_node_or_the_peer_that_told_it() {
    let t0 = Instant::now();
    let mut m = node(t0);
    connect(&mut m, t0, "a", 2);
    connect(&mut m, t0, "b", 3);
    let z = |status, incarnation| Input::Message {
        from: "b".into(),
        msg: MembershipMsg::Gossip {
            members: vec![member("z", 9, incarnation, status)],
        },
    };
    m.handle(t0, z(Status::Alive, 5));
    m.handle(t0, Input::Tick);
    drain(&mut m);
    assert_eq!(m.accusation("a"), None);
    // `a` goes silent and cannot be reached: this node suspects it itself. `b` keeps talking,
    // and `b` tells it that `z` (not connected: held for want of evidence, then applied) is
    // suspect.
    m.handle(t0, z(Status::Suspect, 5));
    let mut now = t0;
    while now < t0 + Duration::from_secs(20) && m.member("a").unwrap().status == Status::Alive {
        now += Duration::from_millis(100);
        let heartbeat = MembershipMsg::Heartbeat;
        let from = "b".into();
        m.handle(
            now,
            Input::Message {
                from,
                msg: heartbeat,
            },
        );
        m.handle(now, Input::Tick);
        drain(&mut m);
    }
    assert_eq!(m.member("a").unwrap().status, Status::Suspect);
    let by = |m: &Membership, name| {
        m.accusation(name)
            .map(|a| (a.incarnation, a.accuser.clone()))
    };
    assert_eq!(by(&m, "a"), Some((5, Accuser::Local)));
    assert_eq!(m.member("z").unwrap().status, Status::Suspect);
    assert_eq!(by(&m, "z"), Some((5, Accuser::Peer("b".into()))));
    assert_eq!(m.accusations().count(), 2);
    // `z` refutes: its last suspicion stays, at the incarnation it was suspected at.
    m.handle(now, z(Status::Alive, 6));
    assert_eq!(m.member("z").unwrap().status, Status::Alive);
    assert_eq!(by(&m, "z"), Some((5, Accuser::Peer("b".into()))));
}
