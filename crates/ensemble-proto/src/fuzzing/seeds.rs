//! Valid inputs for the fuzz targets to start from (their seed corpus, `fuzz/seeds/`) and for
//! the property tests to mutate: a frame of every kind, and sequences that take the protocols
//! somewhere (a table join, a write, anti-entropy, user events in and out of order).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::stack::{PEERS, SINGLETONS, TABLES};
use crate::broadcast::events::{EventInput, EventLog, USER_EVENTS};
use crate::broadcast::{Announcement, BroadcastMsg, Handler};
use crate::member::{Member, Status, Tags};
use crate::messaging::{DirectMsg, RelayMsg};
use crate::singleton::{Hosting, SingletonMsg};
use crate::table::{Kind, LeaderOp, LeaderResult, Op, Record, Refusal, TableMsg, Version};
use crate::topology::Role;
use crate::view::{BUCKETS, FINE};
use crate::wire::{self, Frame, MembershipMsg, Message, PeerInfo};

/// The handshake frames as they are today (Hello, Welcome, Auth, Accepted, Reject): when the
/// handshake changes, this is the one place the seeds name them.
fn handshake() -> Vec<Frame> {
    use crate::wire::{Auth, Hello, Reject, Welcome, WelcomeCore, KEY_LEN, MAGIC};
    let peer = peer_info(0);
    vec![
        Frame::Hello(Hello {
            magic: MAGIC,
            min_version: wire::MIN_PROTOCOL_VERSION,
            max_version: wire::PROTOCOL_VERSION,
            cluster: "default".into(),
            peer: peer.clone(),
            pake: vec![7; 33],
            ephemeral: [8; KEY_LEN],
        }),
        Frame::Welcome(Welcome {
            core: WelcomeCore {
                version: wire::PROTOCOL_VERSION,
                peer,
                pakes: vec![vec![9; 33], vec![10; 33]],
                ephemeral: [11; KEY_LEN],
            },
            confirms: vec![[1; KEY_LEN], [2; KEY_LEN]],
        }),
        Frame::Auth(Auth {
            confirm: [3; KEY_LEN],
        }),
        Frame::Accepted,
        Frame::Reject(Reject::Version { min: 1, max: 2 }),
        Frame::Reject(Reject::Auth),
        Frame::Reject(Reject::Name("n0".into())),
    ]
}

fn peer_info(i: u16) -> PeerInfo {
    PeerInfo {
        name: format!("n{i}"),
        addr: ([127, 0, 0, 1], 7000 + i).into(),
        incarnation: 1,
        instance: 5,
        role: Some(Role::Server),
    }
}

fn member(name: &str, incarnation: u64, status: Status) -> Arc<Member> {
    let tags = BTreeMap::from([("ensemble.role".to_string(), "server".to_string())]);
    Arc::new(Member {
        name: name.into(),
        addr: ([127, 0, 0, 1], 7009).into(),
        incarnation,
        status,
        tags: Tags::new(tags).expect("small tags"),
    })
}

fn version(time: u64) -> Version {
    Version { time, origin: 11 }
}

fn ops() -> Vec<Op> {
    let b = Bytes::from_static;
    vec![
        Op::Insert {
            key: b(b"key"),
            value: b(b"value"),
            version: version(3),
        },
        Op::Insert {
            key: b(b"a key longer than twenty-three bytes"),
            value: Bytes::from(vec![5; 40]),
            version: version(4),
        },
        Op::DeleteObject {
            key: b(b"key"),
            value: b(b"value"),
            version: version(5),
        },
        Op::Delete {
            key: b(b"k2"),
            version: version(6),
        },
    ]
}

fn records() -> Vec<Record> {
    (0..4u8)
        .map(|i| Record {
            key: Bytes::from(vec![b'k', i]),
            value: Bytes::from(vec![i; usize::from(i) * 9]),
            version: version(u64::from(i) + 1),
        })
        .collect()
}

/// A user event of `origin`'s stream 1, as a broadcast carries it.
pub fn user_event(origin: &str, seq: u64) -> Bytes {
    event_at(origin, seq, seq)
}

fn event_at(origin: &str, seq: u64, ltime: u64) -> Bytes {
    let e = crate::broadcast::events::UserEvent {
        origin: origin.into(),
        stream: 1,
        seq,
        ltime,
        name: "deploy".into(),
        payload: Bytes::from_static(b"v2"),
    };
    Bytes::from(postcard::to_stdvec(&e).expect("serializes"))
}

/// One message of every kind.
pub fn messages() -> Vec<Message> {
    let (t, b) = (TABLES[0].to_string(), TABLES[1].to_string());
    let s = SINGLETONS[0].to_string();
    let announce = Announcement {
        handler: USER_EVENTS.into(),
        id: Bytes::from_static(b"\x02n1\x01\x02\x02"),
        root: "n1".into(),
        round: 1,
    };
    let mut out: Vec<Message> = [
        MembershipMsg::Heartbeat,
        MembershipMsg::Ping { seq: 1 },
        MembershipMsg::Ack { seq: 1 },
        MembershipMsg::ProbeRequest {
            seq: 2,
            target: "n2".into(),
        },
        MembershipMsg::ProbeResult {
            seq: 2,
            target: "n2".into(),
            reachable: true,
        },
        MembershipMsg::Gossip {
            members: vec![
                member("n3", 2, Status::Alive),
                member("n2", 1, Status::Suspect),
            ],
        },
        MembershipMsg::Digest {
            buckets: (0..BUCKETS as u64).collect(),
            reply: true,
        },
        MembershipMsg::FineDigest {
            buckets: vec![3],
            digests: vec![17],
            fine: vec![1; FINE],
            reply: true,
        },
        MembershipMsg::Sync {
            members: vec![
                member("n1", 1, Status::Alive),
                member("n4", 3, Status::Down),
            ],
        },
        MembershipMsg::Referral {
            members: vec![member("n5", 1, Status::Alive)],
        },
    ]
    .into_iter()
    .map(Message::Membership)
    .collect();
    out.extend(
        [
            BroadcastMsg::Gossip {
                handler: USER_EVENTS.into(),
                id: announce.id.clone(),
                payload: user_event("n1", 1),
                root: "n1".into(),
                round: 0,
                limit: Some(u64::MAX / 2),
            },
            BroadcastMsg::IHave {
                batch: 1,
                items: vec![announce.clone()],
            },
            BroadcastMsg::IHaveAck { batch: 1 },
            BroadcastMsg::Graft {
                items: vec![announce],
            },
            BroadcastMsg::Prune { root: "n1".into() },
            BroadcastMsg::Exchange {
                session: 1,
                handler: USER_EVENTS.into(),
                summary: summary(),
            },
            BroadcastMsg::ExchangeReply {
                session: 1,
                handler: USER_EVENTS.into(),
                summary: summary(),
                items: vec![(Bytes::from_static(b"id"), user_event("n2", 1))],
            },
            BroadcastMsg::ExchangeItems {
                handler: USER_EVENTS.into(),
                items: vec![(Bytes::from_static(b"id"), user_event("n2", 2))],
            },
        ]
        .map(Message::Broadcast),
    );
    let cast = DirectMsg::Cast {
        name: "inbox".into(),
        payload: Bytes::from_static(b"hello"),
        channel: Some("bulk".into()),
    };
    out.extend(
        [
            cast.clone(),
            DirectMsg::Forward {
                id: 1,
                name: "inbox".into(),
                payload: Bytes::from_static(b"hello"),
                channel: None,
            },
            DirectMsg::Ack { id: 1 },
            DirectMsg::Nack {
                id: 1,
                name: "inbox".into(),
            },
        ]
        .map(Message::Direct),
    );
    out.push(Message::Relay(RelayMsg {
        from: "n1".into(),
        to: "n0".into(),
        hops: 2,
        msg: cast,
    }));
    out.extend(table_messages(&t, &b).into_iter().map(Message::Table));
    out.extend(
        [
            SingletonMsg::Hosted {
                names: vec![Hosting {
                    name: s.clone(),
                    instance: 1,
                    highest: 2,
                    majority_of: None,
                }],
            },
            SingletonMsg::Unhosted { name: s.clone() },
            SingletonMsg::Claim {
                name: s.clone(),
                epoch: 3,
                seq: 1,
            },
            SingletonMsg::ClaimAck {
                name: s.clone(),
                epoch: 3,
                seq: 1,
            },
            SingletonMsg::Stale {
                name: s.clone(),
                highest: 4,
            },
            SingletonMsg::Prepare {
                name: SINGLETONS[1].into(),
                epoch: 5,
            },
            SingletonMsg::Vote {
                name: SINGLETONS[1].into(),
                epoch: 5,
                granted: true,
                highest: 5,
            },
            SingletonMsg::Resign { name: s, epoch: 3 },
        ]
        .map(Message::Singleton),
    );
    out
}

fn table_messages(t: &str, b: &str) -> Vec<TableMsg> {
    let t = || t.to_string();
    let bytes = Bytes::from_static;
    vec![
        TableMsg::Hosted {
            tables: vec![t(), b.to_string()],
        },
        TableMsg::Ops {
            table: t(),
            join_id: 0,
            seq: 1,
            ops: Arc::new(ops()),
        },
        TableMsg::Ops {
            table: b.to_string(),
            join_id: 0,
            seq: 1,
            ops: Arc::new(ops()),
        },
        TableMsg::Ack { table: t(), seq: 1 },
        TableMsg::NotHosted { table: t() },
        TableMsg::LeaderRequest {
            table: t(),
            id: 1,
            op: LeaderOp::InsertNew {
                key: bytes(b"k"),
                value: bytes(b"v"),
            },
        },
        TableMsg::LeaderRequest {
            table: t(),
            id: 2,
            op: LeaderOp::InsertNewOrLookup {
                key: bytes(b"k"),
                value: bytes(b"v"),
            },
        },
        TableMsg::LeaderRequest {
            table: t(),
            id: 3,
            op: LeaderOp::InsertSerial {
                records: vec![(bytes(b"k"), bytes(b"v"))],
            },
        },
        TableMsg::LeaderReply {
            table: t(),
            id: 1,
            result: LeaderResult::Exists(bytes(b"v")),
        },
        TableMsg::Ping { table: t(), id: 1 },
        TableMsg::Pong { table: t(), id: 1 },
        TableMsg::Pause {
            table: t(),
            join: 1,
        },
        TableMsg::Paused {
            table: t(),
            join: 1,
            peers: vec!["n2".into()],
            join_id: 0,
            digest: 0,
            kind: Kind::Set,
        },
        TableMsg::Refused {
            table: t(),
            join: 1,
            reason: Refusal::Busy {
                coordinator: "n2".into(),
            },
        },
        TableMsg::Refused {
            table: t(),
            join: 1,
            reason: Refusal::Incomplete { got: 1, total: 2 },
        },
        TableMsg::SnapshotRequest {
            table: t(),
            join: 1,
        },
        TableMsg::Chunk {
            table: t(),
            join: 1,
            records: records(),
        },
        TableMsg::SnapshotEnd {
            table: t(),
            join: 1,
            total: 4,
        },
        TableMsg::Apply {
            table: t(),
            join: 1,
            total: 4,
            members: vec!["n0".into(), "n1".into()],
            join_id: 77,
        },
        TableMsg::Applied {
            table: t(),
            join: 1,
        },
        TableMsg::Unpause {
            table: t(),
            join: 1,
        },
        TableMsg::Forget { table: t() },
    ]
}

fn summary() -> Bytes {
    let mut log = EventLog::new("n2".into(), 1, 8, |_| {});
    log.merge(&Bytes::new(), &user_event("n1", 1));
    log.summary().expect("the event log has a summary")
}

/// Every frame kind, each with a name for its seed file (`hello`, `membership.ping`,
/// `table.ops`...).
pub fn frames() -> Vec<(String, Frame)> {
    let mut out: Vec<(String, Frame)> = handshake()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (format!("handshake-{i}"), f))
        .collect();
    let mut seen = BTreeMap::<&str, usize>::new();
    for m in messages() {
        let n = seen.entry(m.kind()).or_default();
        *n += 1;
        let name = match *n {
            1 => m.kind().to_string(),
            n => format!("{}-{n}", m.kind()),
        };
        out.push((name, Frame::Message(m)));
    }
    out
}

/// Sequences for the stack target ([`super::stack`]): a table join coordinated by a peer, a
/// peer's writes, anti-entropy, user events, a singleton's claims, and every message once.
pub fn stack_sequences() -> Vec<(String, Vec<u8>)> {
    let (t, b) = (TABLES[0], TABLES[1]);
    let table_msg = |m: TableMsg| Message::Table(m);
    let msgs = table_messages(t, b);
    let pick = |kind: &str| {
        msgs.iter()
            .find(|m| m.kind() == kind)
            .cloned()
            .map(table_msg)
            .expect("a table message of every kind")
    };
    // A join coordinated by the first peer, which gives the replica the join id its writes
    // must carry (writes with another are acked and ignored).
    let join = |table: &str, join: u64, join_id: u64| {
        let table = table.to_string();
        [
            TableMsg::Hosted {
                tables: vec![table.clone()],
            },
            TableMsg::Pause {
                table: table.clone(),
                join,
            },
            TableMsg::SnapshotRequest {
                table: table.clone(),
                join,
            },
            TableMsg::Chunk {
                table: table.clone(),
                join,
                records: records(),
            },
            TableMsg::Apply {
                table: table.clone(),
                join,
                total: records().len() as u64,
                members: vec!["n0".into(), PEERS[0].into()],
                join_id,
            },
            TableMsg::Unpause { table, join },
        ]
        .map(|m| (0, table_msg(m)))
        .to_vec()
    };
    let write = |table: &str, join_id: u64, seq: u64| TableMsg::Ops {
        table: table.to_string(),
        join_id,
        seq,
        ops: Arc::new(ops()),
    };
    let mut writes = join(t, 1, 77);
    writes.extend(join(b, 2, 78));
    writes.extend([
        (0, table_msg(write(t, 77, 1))),
        (0, table_msg(write(b, 78, 1))),
        (4, pick("table.ping")),
        (1, table_msg(write(t, 77, 1))),
        (0, table_msg(write(t, 77, 2))),
    ]);
    let join = join(t, 1, 77);
    let events = vec![
        (0, gossip_event(1)),
        (4, gossip_event(3)),
        (8, gossip_event(2)),
    ];
    let everything: Vec<(u8, Message)> = messages()
        .into_iter()
        .enumerate()
        .map(|(i, m)| ((i % 2) as u8, m))
        .collect();
    let claims = messages()
        .into_iter()
        .filter(|m| matches!(m, Message::Singleton(_)))
        .map(|m| (40, m))
        .collect();
    let mut churn = everything.clone();
    churn.insert(3, (3, Message::Membership(MembershipMsg::Heartbeat)));
    churn.insert(9, (203, Message::Membership(MembershipMsg::Heartbeat)));
    let encode = |items: Vec<(u8, Message)>| {
        let frames: Vec<(u8, Vec<u8>)> = items
            .into_iter()
            .map(|(ctl, m)| (ctl, wire::encode(&Frame::Message(m))))
            .collect();
        super::sequence(frames.iter().map(|(c, f)| (*c, &f[..])))
    };
    [
        ("join", join),
        ("writes", writes),
        ("events", events),
        ("everything", everything),
        ("claims", claims),
        ("churn", churn),
    ]
    .into_iter()
    .map(|(name, items)| (name.to_string(), encode(items)))
    .collect()
}

fn gossip_event(seq: u64) -> Message {
    let id = Bytes::from(format!("{}-{seq}", PEERS[0]));
    Message::Broadcast(BroadcastMsg::Gossip {
        handler: USER_EVENTS.into(),
        id,
        payload: user_event(PEERS[0], seq),
        root: PEERS[0].into(),
        round: 0,
        limit: None,
    })
}

/// Sequences for the user-event target ([`super::user_events`]): events in order, out of
/// order and repeated, an exchange's summary, ids to graft, and the node's own broadcasts.
pub fn event_sequences() -> Vec<(String, Vec<u8>)> {
    let mut peer = EventLog::new("n1".into(), 1, 8, |_| {});
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let input = EventInput {
            name: name.into(),
            payload: Bytes::from_static(b"x"),
        };
        let (id, payload) = peer.broadcast_data(input.encode());
        peer.merge(&id, &payload);
        ids.push((id, payload));
    }
    let peer_summary = peer.summary().expect("a summary");
    let own = EventInput {
        name: "mine".into(),
        payload: Bytes::from_static(b"y"),
    }
    .encode();
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let (sum, own, none) = (&peer_summary[..], &own[..], &[][..]);
    let edge = event_at("n2", u64::MAX - 1, u64::MAX - 1);
    let first = event_at("n3", 1, 1);
    type Calls<'a> = Vec<(u8, &'a [u8])>;
    let sequences: Vec<(&str, Calls)> = vec![
        (
            "in-order",
            vec![(0, &a.1[..]), (0, &b.1), (0, &c.1), (5, none)],
        ),
        (
            "out-of-order",
            vec![(0, &c.1[..]), (0, &a.1), (1, &b.0), (0, &b.1), (0, &b.1)],
        ),
        (
            "exchange",
            vec![(3, sum), (0, &b.1), (2, &b.0), (3 + 6 * 5, sum)],
        ),
        ("own", vec![(4, own), (4, none), (5, none), (2, &a.0)]),
        // Numbers at the ends of their ranges, for the fuzzer to push over.
        (
            "edges",
            vec![(0, &edge[..]), (4, own), (0, &first[..]), (5, none)],
        ),
    ];
    sequences
        .into_iter()
        .map(|(name, items)| (name.to_string(), super::sequence(items)))
        .collect()
}
