//! Unit tests of the membership state machine, driven input by input.

use super::*;
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
