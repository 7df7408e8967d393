//! Broadcast introspection across the cluster: a member's eager and lazy peers for a root and
//! its running exchanges, asked as a message to the reserved name `ensemble.broadcast` over the
//! authenticated mesh; and a whole tree, gathered from every live member. Members that do not
//! answer in time are reported as such. Every answer is bounded in size and count.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble_proto::broadcast::Plumtree;
use ensemble_proto::member::MAX_NAME_LEN;
use ensemble_proto::messaging;
use ensemble_proto::stack::Input;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::Driver;
use crate::command::{BroadcastPeers, BroadcastTree};
use crate::error::Error;

/// The reserved name broadcast introspection travels under.
pub(crate) const BROADCAST_INFO: &str = "ensemble.broadcast";

/// Most peers reported per list (eager, lazy) by one node.
pub(crate) const MAX_REPORTED_PEERS: usize = 1024;
/// Most exchanges reported by one node.
pub(crate) const MAX_REPORTED_EXCHANGES: usize = 256;

/// The messages of broadcast introspection between nodes.
#[derive(Debug, Serialize, Deserialize)]
enum InfoMsg {
    /// Report your peers for `root` (None: your own tree) and your exchanges.
    Request { id: u64, root: Option<String> },
    /// The answer to request `id`.
    Reply { id: u64, peers: BroadcastPeers },
}

/// Answers gathered for one request, by member.
pub(super) type InfoAnswers = mpsc::Sender<(String, BroadcastPeers)>;

impl Driver {
    /// Lets introspection requests reach this node (its messaging accepts the reserved name).
    pub(super) fn serve_broadcast_info(&mut self, now: Instant) {
        let input = messaging::Input::Register(BROADCAST_INFO.into());
        self.core.handle(now, Input::Messaging(input));
    }

    /// One member's peers: this node's at once, another's asked over the mesh.
    pub(super) fn on_peers_command(
        &mut self,
        now: Instant,
        node: String,
        root: Option<String>,
        timeout: Duration,
        reply: oneshot::Sender<Result<BroadcastPeers, Error>>,
    ) {
        if node == self.core.broadcast().name() {
            let _ = reply.send(Ok(local_peers(self.core.broadcast(), root.as_deref())));
            return;
        }
        if !self.live_others().contains(&node) {
            let _ = reply.send(Err(Error::UnknownNode(node)));
            return;
        }
        let rx = self.ask(now, std::slice::from_ref(&node), root);
        self.tasks.spawn(async move {
            let (mut answers, _) = gather(vec![node.clone()], rx, timeout).await;
            let answer = answers.remove(&node).ok_or(Error::Timeout {
                node,
                name: BROADCAST_INFO.into(),
                after: timeout,
            });
            let _ = reply.send(answer);
        });
    }

    /// Every live member's peers for `root`, this node's included.
    pub(super) fn on_tree_command(
        &mut self,
        now: Instant,
        root: String,
        timeout: Duration,
        reply: oneshot::Sender<BroadcastTree>,
    ) {
        let mine = local_peers(self.core.broadcast(), Some(&root));
        let targets = self.live_others();
        let rx = self.ask(now, &targets, Some(root.clone()));
        self.tasks.spawn(async move {
            let (mut nodes, unanswered) = gather(targets, rx, timeout).await;
            nodes.insert(mine.node.clone(), mine);
            let tree = BroadcastTree {
                root,
                nodes,
                unanswered,
            };
            let _ = reply.send(tree);
        });
    }

    /// Live members other than this node.
    fn live_others(&self) -> Vec<String> {
        let membership = self.core.membership();
        let me = &membership.local().name;
        (membership.members())
            .filter(|m| m.status.is_up() && m.name != *me)
            .map(|m| m.name.clone())
            .collect()
    }

    /// Sends a request to each target; their answers come out of the returned channel.
    fn ask(
        &mut self,
        now: Instant,
        targets: &[String],
        root: Option<String>,
    ) -> mpsc::Receiver<(String, BroadcastPeers)> {
        let id = self.next_token();
        let (tx, rx) = mpsc::channel(targets.len() + 1);
        self.info_ops.retain(|_, tx| !tx.is_closed());
        self.info_ops.insert(id, tx);
        let request = encode(&InfoMsg::Request { id, root });
        for to in targets {
            self.cast_reserved(now, to, BROADCAST_INFO, request.clone());
        }
        rx
    }

    /// A message to the reserved name from `from`: a request to answer, or an answer.
    pub(super) fn on_broadcast_info_message(&mut self, now: Instant, from: String, payload: Bytes) {
        let Ok(msg) = postcard::from_bytes::<InfoMsg>(&payload) else {
            warn!("a malformed broadcast introspection message from {from} was dropped");
            return;
        };
        match msg {
            InfoMsg::Request { id, root } => {
                if root.as_ref().is_some_and(|r| r.len() > MAX_NAME_LEN) {
                    warn!("a broadcast introspection request from {from} for an over-long root was dropped");
                    return;
                }
                let peers = local_peers(self.core.broadcast(), root.as_deref());
                let reply = encode(&InfoMsg::Reply { id, peers });
                self.cast_reserved(now, &from, BROADCAST_INFO, reply);
            }
            InfoMsg::Reply { id, mut peers } => {
                if peers.eager.len() > MAX_REPORTED_PEERS
                    || peers.lazy.len() > MAX_REPORTED_PEERS
                    || peers.exchanges.len() > MAX_REPORTED_EXCHANGES
                {
                    warn!("an oversized broadcast introspection answer from {from} was dropped");
                    return;
                }
                peers.node.clone_from(&from);
                if let Some(tx) = self.info_ops.get(&id) {
                    let _ = tx.try_send((from, peers));
                }
            }
        }
    }
}

/// This node's peers for `root` (None: its own tree) and its exchanges, cut to the reporting
/// limits.
pub(super) fn local_peers(p: &Plumtree, root: Option<&str>) -> BroadcastPeers {
    let root = root.unwrap_or(p.name()).to_owned();
    let (mut eager, mut lazy) = p.peers(&root);
    let mut exchanges = p.exchanges();
    let truncated = eager.len() > MAX_REPORTED_PEERS
        || lazy.len() > MAX_REPORTED_PEERS
        || exchanges.len() > MAX_REPORTED_EXCHANGES;
    eager.truncate(MAX_REPORTED_PEERS);
    lazy.truncate(MAX_REPORTED_PEERS);
    exchanges.truncate(MAX_REPORTED_EXCHANGES);
    BroadcastPeers {
        node: p.name().to_owned(),
        root,
        eager,
        lazy,
        exchanges,
        truncated,
    }
}

fn encode(msg: &InfoMsg) -> Bytes {
    Bytes::from(postcard::to_stdvec(msg).expect("an introspection message encodes"))
}

/// Waits for every target's answer (one each, from targets only) or the deadline; returns
/// the answers and the targets that did not answer.
async fn gather(
    targets: Vec<String>,
    mut rx: mpsc::Receiver<(String, BroadcastPeers)>,
    timeout: Duration,
) -> (BTreeMap<String, BroadcastPeers>, Vec<String>) {
    let expected: BTreeSet<&String> = targets.iter().collect();
    let mut answers = BTreeMap::new();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while answers.len() < expected.len() {
        tokio::select! {
            got = rx.recv() => match got {
                Some((from, peers)) if expected.contains(&from) => {
                    answers.insert(from, peers);
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let unanswered = (targets.into_iter())
        .filter(|t| !answers.contains_key(t))
        .collect();
    (answers, unanswered)
}
