//! Frames off the wire fed to a node's protocols, as the runtime feeds them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broadcast::events::{EventLog, USER_EVENTS};
use crate::member::{Member, Status, Tags};
use crate::stack::{Input, Output, Stack, StackConfig};
use crate::table::{Kind, TableSpec};
use crate::wire::{self, Frame, PeerInfo};
use crate::{broadcast, singleton, table};

/// The node the frames arrive at.
pub const LOCAL: &str = "n0";
/// Its connected peers, then a member it is not connected to.
pub const PEERS: [&str; 3] = ["n1", "n2", "n3"];
/// The tables it hosts: a set and a bag.
pub const TABLES: [&str; 2] = ["t", "b"];
/// Its singletons: one without and one with the majority rule.
pub const SINGLETONS: [&str; 2] = ["s", "m"];

/// Most items of one input that are fed (a longer input only costs time).
const MAX_ITEMS: usize = 512;

/// `bytes` as a sequence of [`super::items`]: each item's data is a frame from a peer, decoded
/// as the connection task decodes it ([`wire::decode_shared`]) and fed to a [`Stack`] that
/// is connected to two peers and hosts tables, singletons and the user-event handler. The
/// control byte picks the sender (`ctl % 4`: [`PEERS`], or 3: the second peer's connection
/// closes and opens again instead) and how much time passes first (`ctl / 4` tenths of a
/// second, then a tick). Nothing may panic, and every message the node sends must encode
/// and decode to itself.
pub fn stack(bytes: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    let mut node = node(now);
    let mut connected = true;
    for (ctl, data) in super::items(bytes).take(MAX_ITEMS) {
        let wait = Duration::from_millis(100 * u64::from(ctl / 4));
        if !wait.is_zero() {
            now += wait;
            node.handle(now, Input::Tick);
            drain(&mut node);
        }
        let input = match ctl % 4 {
            3 if connected => Input::Disconnected {
                name: PEERS[1].into(),
            },
            3 => Input::Connected {
                peer: peer(1),
                dialed: None,
            },
            i => {
                let frame = Bytes::copy_from_slice(data);
                let Ok(Frame::Message(msg)) = wire::decode_shared(&frame) else {
                    // The connection task closes the connection on anything else.
                    continue;
                };
                Input::Message {
                    from: PEERS[usize::from(i)].into(),
                    msg,
                }
            }
        };
        if ctl % 4 == 3 {
            connected = !connected;
        }
        node.handle(now, input);
        drain(&mut node);
    }
    // Every timer due in the next minutes runs, on whatever the frames left.
    for _ in 0..64 {
        let Some(at) = node.poll_timeout() else { break };
        if at > start + Duration::from_secs(600) {
            break;
        }
        now = now.max(at);
        node.handle(now, Input::Tick);
        drain(&mut node);
    }
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i))
}

fn peer(i: usize) -> PeerInfo {
    PeerInfo {
        name: PEERS[i].into(),
        addr: addr(1 + i as u16),
        incarnation: 1,
        instance: 1 + i as u64,
        role: None,
    }
}

/// The node: connected to the first two peers, with its tables, singletons and handler.
fn node(now: Instant) -> Stack {
    let local = Member {
        name: LOCAL.into(),
        addr: addr(0),
        incarnation: 1,
        status: Status::Alive,
        tags: Tags::default(),
    };
    let mut node = Stack::new(StackConfig::default(), local, [], 7, now);
    for i in 0..2 {
        let peer = peer(i);
        node.handle(now, Input::Connected { peer, dialed: None });
    }
    let log = EventLog::new(LOCAL.into(), 1, 64, |_| {});
    node.handle(
        now,
        Input::Broadcast(broadcast::Input::Register {
            token: 1,
            name: USER_EVENTS.into(),
            handler: Box::new(log),
        }),
    );
    for (i, (table, kind)) in TABLES.iter().zip([Kind::Set, Kind::Bag]).enumerate() {
        let spec = TableSpec {
            kind,
            ..TableSpec::set()
        };
        let table = table.to_string();
        let create = table::Input::Create {
            token: 2 + i as u64,
            table,
            spec,
        };
        node.handle(now, Input::Table(create));
    }
    for (i, (name, majority_of)) in SINGLETONS.iter().zip([None, Some(3)]).enumerate() {
        let spec = singleton::SingletonSpec { majority_of };
        let register = singleton::Input::Register {
            token: 4 + i as u64,
            name: name.to_string(),
            spec,
        };
        node.handle(now, Input::Singleton(register));
    }
    drain(&mut node);
    node
}

/// Takes every output; a message sent is encoded and decoded again.
fn drain(node: &mut Stack) {
    while let Some(out) = node.poll_output() {
        if let Output::Send { msg, .. } = out {
            let frame = Frame::Message(msg);
            let bytes = wire::encode(&frame);
            assert_eq!(wire::decode(&bytes).ok(), Some(frame), "a sent message");
        }
    }
}
