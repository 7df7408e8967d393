//! A peer that stops reading cannot make this node hold without bound: the messages queued to
//! a connection are bounded in bytes (`Config::send_queue_bytes`), beyond which they are
//! dropped and counted. Over real TCP, with a peer that completes the handshake, announces
//! itself, and never reads again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::wire::{self, Frame, MembershipMsg, Message, PeerInfo};
use ensemble_proto::{Member, Status, Tags};
use futures::SinkExt;
use tokio::net::TcpStream;

use crate::keyring::{Keyring, KeyringCell};
use crate::transport::handshake::{self, Params};
use crate::transport::{framed, CutOff};
use crate::{Config, Node, Secret};

#[derive(Debug)]
struct Nobody;
impl CutOff for Nobody {
    fn is_cut_off(&self, _: &str) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_at_most_the_byte_limit() {
    let secret = Secret::new("send-queue-test-key-0123456789").unwrap();
    let mut config = Config::new("n", "127.0.0.1:0".parse().unwrap(), secret.clone());
    config.send_queue_bytes = 4 << 20;
    let node = Node::start(config).await.unwrap();
    // The stuck peer: a handshake, its own entry, then silence.
    let mut stream = framed(TcpStream::connect(node.addr()).await.unwrap());
    let me = PeerInfo {
        name: "stuck".into(),
        addr: "127.0.0.1:20997".parse().unwrap(),
        incarnation: 1,
        instance: 1,
        role: None,
    };
    let params = Params {
        cluster: "default".into(),
        keyring: KeyringCell::new(Keyring::new(secret)),
        me: me.clone(),
        cut_off: Arc::new(Nobody),
    };
    let (_, _, mut session) = handshake::dial(&mut stream, &params, Duration::from_secs(5))
        .await
        .unwrap();
    let member = Member {
        name: me.name.clone(),
        addr: me.addr,
        incarnation: 1,
        status: Status::Alive,
        tags: Tags::default(),
    };
    let hello = Frame::Message(Message::Membership(MembershipMsg::Sync {
        members: vec![Arc::new(member)],
    }));
    let sealed = session.seal(&wire::encode(&hello));
    stream.send(Bytes::from(sealed)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !node.members().iter().any(|m| m.name == "stuck") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer never became a member"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 120 MiB of casts to it: the queue takes 4 MiB and the sockets' buffers up to their
    // limits (net.ipv4.tcp_wmem and tcp_rmem: 4 and 32 MiB on these machines), the rest is
    // dropped. Drops are counted as the connection's writer meets them, so the count is
    // polled.
    let payload = Bytes::from(vec![7u8; 256 << 10]);
    for _ in 0..480 {
        node.cast_message("stuck", "x", payload.clone())
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let dropped = node.broadcast_status(None).await.unwrap().dropped_frames;
        if dropped >= 240 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {dropped} of 480 frames dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await;
    drop(stream);
}
