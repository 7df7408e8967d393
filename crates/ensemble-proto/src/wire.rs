//! Wire format: the messages nodes exchange, and their compact binary encoding.
//!
//! Every frame on a connection is one [`Frame`] encoded with postcard. A connection starts with
//! the handshake frames ([`Hello`], [`Welcome`], [`Auth`], [`Accepted`], [`Reject`]), which settle
//! the protocol version, and then carries [`Message`]s. Each protocol (membership now; broadcast,
//! tables and singletons later) owns one variant of [`Message`], so a new protocol adds a variant
//! under a new protocol version without touching the others.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::member::Member;

pub use crate::broadcast::BroadcastMsg;
pub use crate::messaging::DirectMsg;
pub use crate::singleton::SingletonMsg;
pub use crate::table::TableMsg;

/// Oldest protocol version this build speaks: a peer of an older one is refused with
/// [`Reject::Version`], which tells both sides' ranges.
pub const MIN_PROTOCOL_VERSION: u16 = 4;
/// Newest protocol version this build speaks (2: roles in the handshake, referrals, relay;
/// 3: a replica's refusal of a join step is an enum, `table::Refusal`, not a text; 4: the
/// handshake is a password-authenticated key exchange (SPAKE2) with ephemeral X25519, bound
/// to the whole transcript, and accepts any key of the acceptor's keyring).
pub const PROTOCOL_VERSION: u16 = 4;
/// First bytes of every `Hello`, so a stray client is told apart from an old Ensemble node.
pub const MAGIC: [u8; 4] = *b"ENSM";

/// Most keys an acceptor offers in one handshake (its keyring's size limit).
pub const MAX_HANDSHAKE_KEYS: usize = 8;

/// Length of an X25519 public key and of a key confirmation, in bytes.
pub const KEY_LEN: usize = 32;

/// Longest SPAKE2 message accepted, in bytes (they are 33).
pub const MAX_PAKE_LEN: usize = 64;

/// A frame on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Dialer to acceptor: who I am, which versions I speak, my halves of the key exchanges.
    Hello(Hello),
    /// Acceptor to dialer: chosen version, who I am, my halves of the key exchanges (one
    /// password-authenticated exchange per key I accept), and a key confirmation for each.
    Welcome(Welcome),
    /// Dialer to acceptor: my key confirmation.
    Auth(Auth),
    /// Acceptor to dialer: the handshake is complete.
    Accepted,
    /// Either side: the handshake failed, and why.
    Reject(Reject),
    /// A protocol message, once the handshake is complete.
    Message(Message),
}

/// Identity a node announces in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Member name.
    pub name: String,
    /// Address it listens on.
    pub addr: SocketAddr,
    /// Its current incarnation.
    pub incarnation: u64,
    /// Random per process start: tells two connections to one process from connections to
    /// two processes (a restart) even while the incarnation changes.
    pub instance: u64,
    /// Its role in a client-server topology (None: full mesh). A client refuses connections
    /// from clients with a referral.
    pub role: Option<crate::topology::Role>,
}

impl PeerInfo {
    /// How the process `instance` announces the member `m` (its name, address, incarnation
    /// and role) in a handshake.
    pub fn of(m: &Member, instance: u64) -> PeerInfo {
        PeerInfo {
            name: m.name.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            instance,
            role: crate::topology::role_of(m),
        }
    }
}

/// First frame of the dialer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// Oldest version the dialer speaks.
    pub min_version: u16,
    /// Newest version the dialer speaks.
    pub max_version: u16,
    /// The dialer's cluster name. The acceptor does not trust it (the key exchange binds the
    /// acceptor's own cluster name) and uses it only to log why a handshake failed.
    pub cluster: String,
    /// The dialer.
    pub peer: PeerInfo,
    /// The dialer's SPAKE2 message (side A) under its primary key.
    pub pake: Vec<u8>,
    /// The dialer's ephemeral X25519 public key.
    pub ephemeral: [u8; KEY_LEN],
}

/// What the acceptor's key confirmations cover, besides the [`Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelcomeCore {
    /// The version both will speak: the highest both support.
    pub version: u16,
    /// The acceptor.
    pub peer: PeerInfo,
    /// The acceptor's SPAKE2 messages (side B), one per key it accepts.
    pub pakes: Vec<Vec<u8>>,
    /// The acceptor's ephemeral X25519 public key.
    pub ephemeral: [u8; KEY_LEN],
}

/// The acceptor's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Everything but the confirmations.
    pub core: WelcomeCore,
    /// Per key, in the order of `core.pakes`: the acceptor's key confirmation, a MAC over the
    /// transcript under the keys that exchange gives.
    pub confirms: Vec<[u8; KEY_LEN]>,
}

/// The dialer's answer to a [`Welcome`] whose confirmation matched one of its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// The dialer's key confirmation.
    pub confirm: [u8; KEY_LEN],
}

/// Why a handshake was refused. Before both sides proved a common key, a refusal says nothing
/// about the refusing side's cluster: the details go to its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reject {
    /// The versions do not overlap.
    Version {
        /// Oldest version the refusing side speaks.
        min: u16,
        /// Newest version the refusing side speaks.
        max: u16,
    },
    /// The key exchange failed: no common key, another cluster name, or a changed message.
    Auth,
    /// The name is taken or not allowed (for example it is the refusing node's own name);
    /// sent only once the keys matched.
    Name(String),
}

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Membership and failure detection.
    Membership(MembershipMsg),
    /// Plumtree broadcast.
    Broadcast(BroadcastMsg),
    /// Named messaging.
    Direct(DirectMsg),
    /// Replicated tables.
    Table(TableMsg),
    /// Singleton activators.
    Singleton(SingletonMsg),
    /// A named message on its way through a relay (client to client via servers).
    Relay(crate::messaging::RelayMsg),
}

impl Message {
    /// The messaging channel this message travels on (None: the default one).
    pub fn channel(&self) -> Option<&str> {
        match self {
            Message::Direct(d) => d.channel(),
            Message::Relay(r) => r.msg.channel(),
            _ => None,
        }
    }

    /// A short name of the message's kind, for counters (`membership.ping`, `broadcast.graft`).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Membership(m) => m.kind(),
            Message::Broadcast(b) => b.kind(),
            Message::Direct(d) => match d {
                DirectMsg::Cast { .. } => "cast",
                DirectMsg::Forward { .. } => "forward",
                DirectMsg::Ack { .. } => "forward_ack",
                DirectMsg::Nack { .. } => "forward_nack",
            },
            Message::Table(t) => t.kind(),
            Message::Singleton(s) => s.kind(),
            Message::Relay(_) => "relay",
        }
    }

    /// About how many bytes the message takes encoded, counted without encoding it: its
    /// payloads, keys and values, plus [`SMALL`] for everything else. Send queues are bounded
    /// with it; it is the same every time for the same message.
    pub fn approx_len(&self) -> usize {
        let pairs = |items: &[(bytes::Bytes, bytes::Bytes)]| -> usize {
            items.iter().map(|(a, b)| a.len() + b.len() + 8).sum()
        };
        let direct = |d: &DirectMsg| match d {
            DirectMsg::Cast { payload, .. } | DirectMsg::Forward { payload, .. } => payload.len(),
            _ => 0,
        };
        let body = match self {
            Message::Broadcast(BroadcastMsg::Gossip { payload, .. }) => payload.len(),
            Message::Broadcast(BroadcastMsg::ExchangeReply { items, summary, .. }) => {
                pairs(items) + summary.len()
            }
            Message::Broadcast(BroadcastMsg::ExchangeItems { items, .. }) => pairs(items),
            Message::Broadcast(BroadcastMsg::Exchange { summary, .. }) => summary.len(),
            Message::Direct(d) => direct(d),
            Message::Relay(r) => direct(&r.msg),
            Message::Table(TableMsg::Ops { ops, .. }) => ops.iter().map(|o| o.approx_len()).sum(),
            Message::Table(TableMsg::Chunk { records, .. }) => records
                .iter()
                .map(|r| r.key.len() + r.value.len() + 24)
                .sum(),
            Message::Membership(MembershipMsg::Gossip { members })
            | Message::Membership(MembershipMsg::Sync { members }) => members.len() * 96,
            _ => 0,
        };
        body + SMALL
    }
}

/// What [`Message::approx_len`] counts for a message's fixed parts.
pub const SMALL: usize = 64;

impl MembershipMsg {
    /// A short name of the message's kind, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            MembershipMsg::Heartbeat => "heartbeat",
            MembershipMsg::Ping { .. } => "ping",
            MembershipMsg::Ack { .. } => "ack",
            MembershipMsg::ProbeRequest { .. } => "probe_request",
            MembershipMsg::ProbeResult { .. } => "probe_result",
            MembershipMsg::Gossip { .. } => "gossip",
            MembershipMsg::Digest { .. } => "digest",
            MembershipMsg::FineDigest { .. } => "fine_digest",
            MembershipMsg::Sync { .. } => "sync",
            MembershipMsg::Referral { .. } => "referral",
        }
    }
}

/// Messages of the membership protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipMsg {
    /// Sent every heartbeat interval on every watched connection (see `Config::monitor_neighbours`).
    Heartbeat,
    /// Direct probe; answered by [`MembershipMsg::Ack`].
    Ping {
        /// Matches the ack to the ping.
        seq: u64,
    },
    /// Answer to [`MembershipMsg::Ping`].
    Ack {
        /// The ping's sequence number.
        seq: u64,
    },
    /// Asks a member to probe `target` for the sender (indirect probe).
    ProbeRequest {
        /// Matches the result to the request.
        seq: u64,
        /// Member to probe.
        target: String,
    },
    /// Answer to [`MembershipMsg::ProbeRequest`].
    ProbeResult {
        /// The request's sequence number.
        seq: u64,
        /// Member that was probed.
        target: String,
        /// True if the target acked in time.
        reachable: bool,
    },
    /// Changed members, pushed as soon as they change.
    Gossip {
        /// The changed members.
        members: Vec<Arc<Member>>,
    },
    /// Anti-entropy: a digest of the sender's view, one hash per range of the ring. A receiver
    /// sends back (as `Sync` chunks) its members of every range whose hash differs and, if
    /// `reply` is set, its own digest, so that the sender does the same.
    Digest {
        /// Order-independent hash of the member versions in each range (64 ranges).
        buckets: Vec<u64>,
        /// Whether the receiver should answer with its digest.
        reply: bool,
    },
    /// Anti-entropy: part of the sender's view.
    Sync {
        /// Some of the sender's members.
        members: Vec<Arc<Member>>,
    },
    /// Anti-entropy in a large view: the hashes of the fine ranges of the buckets whose
    /// digests differed. The receiver sends back its members of every fine range whose hash
    /// differs and, if `reply` is set, its own fine hashes of the same buckets.
    FineDigest {
        /// The buckets compared (indices below 64, each once).
        buckets: Vec<u16>,
        /// The sender's 64-bit hash of each of those buckets.
        digests: Vec<u64>,
        /// 64 fine-range hashes per bucket, in the order of `buckets`.
        fine: Vec<u32>,
        /// Whether the receiver should answer with its fine hashes.
        reply: bool,
    },
    /// A client's answer to a connection from another client, which it refuses: itself and
    /// live servers to connect to instead. The connection closes after it.
    Referral {
        /// The referring client first, then servers.
        members: Vec<Arc<Member>>,
    },
}

/// A frame that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct DecodeError(#[from] postcard::Error);

/// Encodes a frame.
pub fn encode(frame: &Frame) -> Vec<u8> {
    postcard::to_stdvec(frame).expect("frames always serialize")
}

/// Appends the encoding of a frame to `buf`.
pub fn encode_into(frame: &Frame, buf: &mut Vec<u8>) {
    let out = postcard::to_extend(frame, std::mem::take(buf)).expect("frames always serialize");
    *buf = out;
}

/// The encoding of a table write's ops, to put into the frame of each peer the write goes to
/// with [`encode_ops_into`]: the write is encoded once, not once per peer.
pub fn encode_ops(ops: &[crate::table::Op]) -> Vec<u8> {
    postcard::to_stdvec(ops).expect("ops always serialize")
}

/// Appends to `buf` what [`encode_into`] appends for a frame of `TableMsg::Ops { table,
/// join_id, seq, ops }`, where `encoded` is [`encode_ops`] of those ops.
///
/// The ops are the frame's last field, so the frame is its head (the same message without
/// ops, which ends with the empty list's length, one zero byte) with that byte replaced by
/// `encoded`.
pub fn encode_ops_into(table: String, join_id: u64, seq: u64, encoded: &[u8], buf: &mut Vec<u8>) {
    let head = Frame::Message(Message::Table(TableMsg::Ops {
        table,
        join_id,
        seq,
        ops: Arc::default(),
    }));
    encode_into(&head, buf);
    let empty = buf.pop();
    debug_assert_eq!(empty, Some(0), "the empty ops come last");
    buf.extend_from_slice(encoded);
}

/// Encodes a frame into `buf` if it fits, returning its length; stops as soon as it does
/// not (a large frame costs no more than the bytes that fit).
pub fn encode_within(frame: &Frame, buf: &mut [u8]) -> Option<usize> {
    postcard::to_slice(frame, buf).ok().map(|used| used.len())
}

/// Bytes a [`Message`] takes on the wire inside its [`Frame`] (the frame's enum tag in front
/// of it takes one byte), computed without allocating.
pub fn message_len(msg: &Message) -> usize {
    1 + encoded_len(msg)
}

/// The encoded size of a value, computed without allocating.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl Extend<u8> for Count {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
            self.0 += iter.into_iter().count();
        }
    }
    postcard::to_extend(value, Count(0))
        .map(|c| c.0)
        .unwrap_or(0)
}

/// Decodes a frame; any byte string gives a frame or an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    Ok(postcard::from_bytes(bytes)?)
}

/// [`decode`] a frame whose table records stay slices of `frame` instead of copies: no
/// allocation per record for a table write or snapshot received.
pub fn decode_shared(frame: &bytes::Bytes) -> Result<Frame, DecodeError> {
    crate::shared_bytes::within(frame, decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Status, Tags};
    use proptest::prelude::*;

    proptest! {
        /// A write's frame made from its ops encoded once is the frame encoded whole.
        #[test]
        fn a_write_frame_from_its_ops_encoded_once_is_the_frame_encoded_whole(
            table in "[a-z]{0,20}",
            join_id in any::<u64>(),
            seq in any::<u64>(),
            ops in prop::collection::vec(
                (
                    0u8..3,
                    prop::collection::vec(any::<u8>(), 0..40),
                    prop::collection::vec(any::<u8>(), 0..300),
                    any::<u64>(),
                    any::<u64>(),
                ),
                0..200,
            ),
            prefix in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            use crate::table::{Op, Version};
            let ops: Vec<Op> = ops
                .into_iter()
                .map(|(kind, key, value, time, origin)| {
                    let (key, value) = (bytes::Bytes::from(key), bytes::Bytes::from(value));
                    let version = Version { time, origin };
                    match kind {
                        0 => Op::Insert { key, value, version },
                        1 => Op::Delete { key, version },
                        _ => Op::DeleteObject { key, value, version },
                    }
                })
                .collect();
            let mut spliced = prefix.clone();
            encode_ops_into(table.clone(), join_id, seq, &encode_ops(&ops), &mut spliced);
            let frame = Frame::Message(Message::Table(TableMsg::Ops {
                table,
                join_id,
                seq,
                ops: Arc::new(ops),
            }));
            let mut whole = prefix.clone();
            encode_into(&frame, &mut whole);
            prop_assert_eq!(&spliced, &whole);
            prop_assert_eq!(decode(&spliced[prefix.len()..]).unwrap(), frame);
        }
    }

    #[test]
    fn frames_round_trip() {
        let member = Member {
            name: "app1".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            incarnation: 42,
            status: Status::Suspect,
            tags: Tags::default(),
        };
        let frames = [
            Frame::Hello(Hello {
                magic: MAGIC,
                min_version: MIN_PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                cluster: "default".into(),
                peer: PeerInfo {
                    name: "app1".into(),
                    addr: member.addr,
                    incarnation: 1,
                    instance: 7,
                    role: Some(crate::topology::Role::Client),
                },
                pake: vec![1; 33],
                ephemeral: [7; KEY_LEN],
            }),
            Frame::Welcome(Welcome {
                core: WelcomeCore {
                    version: PROTOCOL_VERSION,
                    peer: PeerInfo::of(&member, 9),
                    pakes: vec![vec![2; 33], vec![3; 33]],
                    ephemeral: [8; KEY_LEN],
                },
                confirms: vec![[4; KEY_LEN], [5; KEY_LEN]],
            }),
            Frame::Auth(Auth {
                confirm: [6; KEY_LEN],
            }),
            Frame::Reject(Reject::Auth),
            Frame::Message(Message::Membership(MembershipMsg::Gossip {
                members: vec![Arc::new(member)],
            })),
        ];
        for f in frames {
            assert_eq!(decode(&encode(&f)).unwrap(), f);
            assert_eq!(encoded_len(&f), encode(&f).len());
            if let Frame::Message(m) = &f {
                assert_eq!(message_len(m), encode(&f).len());
            }
            let mut into = vec![9];
            encode_into(&f, &mut into);
            assert_eq!(into[1..], encode(&f)[..]);
            let n = encode(&f).len();
            let mut buf = vec![0; n];
            assert_eq!(encode_within(&f, &mut buf), Some(n));
            assert_eq!(buf, encode(&f));
            assert_eq!(encode_within(&f, &mut buf[..n - 1]), None, "one byte short");
        }
    }

    #[test]
    fn heartbeats_are_tiny() {
        let hb = encode(&Frame::Message(Message::Membership(
            MembershipMsg::Heartbeat,
        )));
        assert!(hb.len() <= 3, "{} bytes", hb.len());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_mutated_frames_never_panics(flip in 0usize..64, byte in any::<u8>()) {
            let mut bytes = encode(&Frame::Message(Message::Membership(MembershipMsg::ProbeResult {
                seq: 9, target: "node-7".into(), reachable: true,
            })));
            let i = flip % bytes.len();
            bytes[i] = byte;
            let _ = decode(&bytes);
        }
    }
}
