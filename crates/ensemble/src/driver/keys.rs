//! The driver's side of key rotation: a key operation runs on this node's keyring and, as a
//! message to the reserved name `ensemble.keys` over the authenticated mesh, on every other
//! live node's; the answers are gathered for the caller, like `serf keys`. A request from
//! another node is carried out here and answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble_proto::messaging;
use ensemble_proto::stack::Input;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::Driver;
use crate::command::{KeyCommand, KeyOp, KeyResponse, KeyUse, Outgoing};
use crate::keyring::{fingerprint, KeyringCell};
use crate::secret::Secret;

/// The reserved name key operations travel under.
pub(crate) const KEYS: &str = "ensemble.keys";

/// What one node answers: its keys (fingerprint, primary) after the operation, or why it
/// failed.
pub(super) type Answer = Result<Vec<(String, bool)>, String>;

/// The messages of key operations between nodes.
#[derive(Debug, Serialize, Deserialize)]
enum KeyMsg {
    /// Carry out `op` and answer.
    Request { id: u64, op: KeyOp },
    /// The answer to request `id`.
    Reply { id: u64, answer: Answer },
}

impl Driver {
    /// Lets key operations reach this node (its messaging accepts the reserved name).
    pub(super) fn serve_keys(&mut self, now: Instant) {
        let input = messaging::Input::Register(KEYS.into());
        self.core.handle(now, Input::Messaging(input));
    }

    pub(super) fn on_key_command(&mut self, now: Instant, c: KeyCommand) {
        let KeyCommand { op, timeout, reply } = c;
        let id = self.next_token();
        let me = self.core.membership().local().name.clone();
        let mine = apply(&self.shared.keyring, &op, &me);
        let targets: Vec<String> = (self.core.membership().members())
            .filter(|m| m.status.is_up() && m.name != me)
            .map(|m| m.name.clone())
            .collect();
        let (tx, rx) = mpsc::channel(targets.len() + 1);
        self.key_ops.retain(|_, tx| !tx.is_closed());
        self.key_ops.insert(id, tx);
        let request = encode(&KeyMsg::Request { id, op });
        for to in &targets {
            self.cast_key_message(now, to, request.clone());
        }
        let gather = gather(me, mine, targets, rx, timeout, reply);
        self.tasks.spawn(gather);
    }

    /// A message to the reserved name from `from`: a request to carry out, or an answer.
    pub(super) fn on_key_message(&mut self, now: Instant, from: String, payload: Bytes) {
        let Ok(msg) = postcard::from_bytes::<KeyMsg>(&payload) else {
            warn!("a malformed key operation message from {from} was dropped");
            return;
        };
        match msg {
            KeyMsg::Request { id, op } => {
                let answer = apply(&self.shared.keyring, &op, &from);
                let reply = encode(&KeyMsg::Reply { id, answer });
                self.cast_key_message(now, &from, reply);
            }
            KeyMsg::Reply { id, answer } => {
                if let Some(tx) = self.key_ops.get(&id) {
                    let _ = tx.try_send((from, answer));
                }
            }
        }
    }

    fn cast_key_message(&mut self, now: Instant, to: &str, payload: Bytes) {
        self.cast_reserved(now, to, KEYS, payload);
    }

    /// Casts `payload` to Ensemble's own handler `name` (reserved) on member `to`.
    pub(super) fn cast_reserved(&mut self, now: Instant, to: &str, name: &str, payload: Bytes) {
        let out = Outgoing {
            to: to.to_owned(),
            name: name.into(),
            payload,
            channel: None,
        };
        // A node that does not get it does not answer: the caller hears of it.
        let (reply, _) = oneshot::channel();
        self.send_direct(now, out, None, reply);
    }
}

fn encode(msg: &KeyMsg) -> Bytes {
    Bytes::from(postcard::to_stdvec(msg).expect("a key message encodes"))
}

/// Carries out `op` (asked by `by`) on this node's keyring.
fn apply(keyring: &KeyringCell, op: &KeyOp, by: &str) -> Answer {
    let key = |bytes: &Vec<u8>| Secret::new(bytes.clone()).map_err(|e| e.to_string());
    let done = match op {
        KeyOp::List => Ok(()),
        KeyOp::Install(k) => {
            let k = key(k)?;
            let print = fingerprint(&k);
            keyring
                .update(|r| r.install(k))
                .map(|()| info!("key {print} installed (asked by {by})"))
        }
        KeyOp::Use(k) => {
            let k = key(k)?;
            keyring.update(|r| r.use_key(&k)).map(|()| {
                info!(
                    "key {} is the primary key now (asked by {by})",
                    fingerprint(&k)
                )
            })
        }
        KeyOp::Remove(k) => {
            let k = key(k)?;
            keyring
                .update(|r| r.remove(&k))
                .map(|()| info!("key {} removed (asked by {by})", fingerprint(&k)))
        }
    };
    done.map_err(|e| e.to_string())?;
    Ok(keyring.snapshot().fingerprints())
}

/// Waits for every target's answer (or the deadline), then answers the caller.
async fn gather(
    me: String,
    mine: Answer,
    targets: Vec<String>,
    mut answers_rx: mpsc::Receiver<(String, Answer)>,
    timeout: Duration,
    reply: oneshot::Sender<KeyResponse>,
) {
    let mut answers = BTreeMap::from([(me, mine)]);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while answers.len() < targets.len() + 1 {
        tokio::select! {
            got = answers_rx.recv() => match got {
                Some((from, answer)) if targets.contains(&from) => {
                    answers.insert(from, answer);
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let mut out = KeyResponse {
        nodes: targets.len() + 1,
        ..KeyResponse::default()
    };
    for t in &targets {
        if !answers.contains_key(t) {
            let why = format!("no answer within {timeout:?}");
            out.failed.insert(t.clone(), why);
        }
    }
    for (node, answer) in answers {
        match answer {
            Ok(keys) => {
                out.succeeded.push(node);
                for (print, primary) in keys {
                    let using: &mut KeyUse = out.keys.entry(print).or_default();
                    using.installed += 1;
                    using.primary += usize::from(primary);
                }
            }
            Err(why) => {
                out.failed.insert(node, why);
            }
        }
    }
    let _ = reply.send(out);
}
