//! Named messaging: messages to handlers registered under a name on another node, like
//! registered processes, fire-and-forget (`cast`) or acknowledged (`forward` with an ack:
//! retransmitted until acked or the deadline passes).
//!
//! The receiver answers an acknowledged message with `Ack` once its handler has it, or `Nack`
//! if no handler has that name, so the sender gets a clear error instead of a silent drop.
//! Retransmissions carry the same id; receivers remember recent ids per sender and deliver
//! each message once.

use crate::member::NodeName;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Messages of the named-messaging protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DirectMsg {
    /// Fire-and-forget.
    Cast {
        /// Handler name at the receiver.
        name: String,
        /// The payload.
        payload: Bytes,
        /// The channel (independent send queue) it travels on; None: the default one.
        channel: Option<String>,
    },
    /// Acknowledged delivery; answered by `Ack` or `Nack`.
    Forward {
        /// Unique per sender; retransmissions repeat it.
        id: u64,
        /// Handler name at the receiver.
        name: String,
        /// The payload.
        payload: Bytes,
        /// The channel it travels on; None: the default one.
        channel: Option<String>,
    },
    /// The handler has the message.
    Ack {
        /// The message's id.
        id: u64,
    },
    /// No handler is registered under the name.
    Nack {
        /// The message's id.
        id: u64,
        /// The name that is not registered.
        name: String,
    },
}

/// A named message relayed between two members that are not connected (client to client in a
/// client-server topology): each relay hands it to a member closer to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayMsg {
    /// The original sender.
    pub from: String,
    /// The final receiver.
    pub to: String,
    /// Relays it may still pass; dropped at zero (no loops).
    pub hops: u8,
    /// The message.
    pub msg: DirectMsg,
}

impl DirectMsg {
    /// The channel a message travels on (None: the default one; acks always do).
    pub fn channel(&self) -> Option<&str> {
        match self {
            DirectMsg::Cast { channel, .. } | DirectMsg::Forward { channel, .. } => {
                channel.as_deref()
            }
            DirectMsg::Ack { .. } | DirectMsg::Nack { .. } => None,
        }
    }
}

/// Why an acknowledged message failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No handler is registered under this name at the receiver.
    UnknownName(String),
    /// No ack came before the deadline.
    Timeout,
}

/// An input to named messaging.
#[derive(Debug)]
pub enum Input {
    /// A handler was registered here under this name.
    Register(String),
    /// The handler under this name is gone.
    Unregister(String),
    /// Send `payload` to handler `name` on member `to`; `ack` is `Some((token, deadline))` for
    /// acknowledged delivery (the token comes back in `Acked` or `Failed`).
    Send {
        /// The member.
        to: NodeName,
        /// Handler name there.
        name: String,
        /// The payload.
        payload: Bytes,
        /// For acknowledged delivery: a token chosen by the caller, and the deadline.
        ack: Option<(u64, Instant)>,
        /// The channel to send on (None: the default one).
        channel: Option<String>,
    },
    /// A message from a connected member.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: DirectMsg,
    },
    /// A connection to this member opened: pending messages to it are sent again.
    PeerUp(NodeName),
    /// Time passed.
    Tick,
}

/// An output of named messaging.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Send `msg` to member `to`.
    Send {
        /// The member.
        to: NodeName,
        /// The message.
        msg: DirectMsg,
    },
    /// Hand a message to the local handler `name`.
    Deliver {
        /// The sender.
        from: NodeName,
        /// The handler.
        name: String,
        /// The payload.
        payload: Bytes,
    },
    /// The acknowledged message with this token arrived.
    Acked(u64),
    /// The acknowledged message with this token failed.
    Failed(u64, Failure),
    /// A cast reached `node`, where no handler has `name` (the sender logs it).
    CastRejected {
        /// The member.
        node: NodeName,
        /// The name.
        name: String,
    },
}

struct Pending {
    token: u64,
    channel: Option<String>,
    to: String,
    name: String,
    payload: Bytes,
    deadline: Instant,
    next_retry: Instant,
}

/// Ids remembered per sender to deliver retransmissions once.
const REMEMBERED: usize = 4096;

/// Settings of named messaging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingConfig {
    /// An acknowledged message is sent again after this until its ack or its deadline.
    pub retry: Duration,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            retry: Duration::from_millis(500),
        }
    }
}

/// Named messaging of one node.
pub struct Messaging {
    retry: Duration,
    names: BTreeSet<String>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    /// Recently delivered (sender, id), oldest first.
    seen: VecDeque<(String, u64)>,
    seen_set: HashSet<(String, u64)>,
    outputs: VecDeque<Output>,
    retransmitted: u64,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("names", &self.names)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Messaging {
    /// Named messaging that retransmits unacked messages every `config.retry`.
    pub fn new(config: MessagingConfig) -> Self {
        Messaging {
            retry: config.retry,
            names: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_id: 1,
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            outputs: VecDeque::new(),
            retransmitted: 0,
        }
    }

    /// Numbers this node's acknowledged messages from `first` on. Receivers deliver each
    /// (sender, id) once, so a restarted sender must not reuse its previous run's ids: the
    /// stack starts them at its incarnation (which grows across restarts) times 2^20.
    pub fn first_id(mut self, first: u64) -> Self {
        self.next_id = first.max(1);
        self
    }

    /// Names registered here.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Acknowledged messages still waiting for their ack.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Acknowledged messages sent again (no ack in `retry`, or their receiver came back).
    pub fn retransmitted(&self) -> u64 {
        self.retransmitted
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Register(n) => {
                self.names.insert(n);
            }
            Input::Unregister(n) => {
                self.names.remove(&n);
            }
            Input::Send {
                to,
                name,
                payload,
                ack,
                channel,
            } => match ack {
                None => {
                    let msg = DirectMsg::Cast {
                        name,
                        payload,
                        channel,
                    };
                    self.send(&to, msg)
                }
                Some((token, deadline)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let msg = DirectMsg::Forward {
                        id,
                        name: name.clone(),
                        payload: payload.clone(),
                        channel: channel.clone(),
                    };
                    self.send(&to, msg);
                    let next_retry = now + self.retry;
                    let p = Pending {
                        token,
                        channel,
                        to,
                        name,
                        payload,
                        deadline,
                        next_retry,
                    };
                    self.pending.insert(id, p);
                }
            },
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::PeerUp(peer) => {
                let ids: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.to == peer)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.resend(now, id);
                }
            }
            Input::Tick => self.tick(now),
        }
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted (None: nothing pending).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.next_retry.min(p.deadline))
            .min()
    }

    fn send(&mut self, to: &str, msg: DirectMsg) {
        self.outputs.push_back(Output::Send {
            to: to.to_owned(),
            msg,
        });
    }

    fn resend(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.next_retry = now + self.retry;
        self.retransmitted += 1;
        let msg = DirectMsg::Forward {
            id,
            name: p.name.clone(),
            payload: p.payload.clone(),
            channel: p.channel.clone(),
        };
        let to = p.to.clone();
        self.send(&to, msg);
    }

    fn tick(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.outputs
                    .push_back(Output::Failed(p.token, Failure::Timeout));
            }
        }
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_retry <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.resend(now, id);
        }
    }

    fn on_message(&mut self, from: String, msg: DirectMsg) {
        match msg {
            DirectMsg::Cast { name, payload, .. } => {
                if self.names.contains(&name) {
                    self.outputs.push_back(Output::Deliver {
                        from,
                        name,
                        payload,
                    });
                } else {
                    // Id 0 is never used by a forward: it tells the sender a cast went nowhere.
                    self.send(&from, DirectMsg::Nack { id: 0, name });
                }
            }
            DirectMsg::Forward {
                id, name, payload, ..
            } => {
                if !self.names.contains(&name) {
                    self.send(&from, DirectMsg::Nack { id, name });
                    return;
                }
                let key = (from.clone(), id);
                if !self.seen_set.contains(&key) {
                    self.remember(key);
                    self.outputs.push_back(Output::Deliver {
                        from: from.clone(),
                        name,
                        payload,
                    });
                }
                self.send(&from, DirectMsg::Ack { id });
            }
            DirectMsg::Ack { id } => {
                if self.pending.get(&id).is_some_and(|p| p.to == from) {
                    let p = self.pending.remove(&id).expect("checked");
                    self.outputs.push_back(Output::Acked(p.token));
                }
            }
            DirectMsg::Nack { id: 0, name } => {
                self.outputs
                    .push_back(Output::CastRejected { node: from, name });
            }
            DirectMsg::Nack { id, name } => {
                if self.pending.get(&id).is_some_and(|p| p.to == from) {
                    let p = self.pending.remove(&id).expect("checked");
                    self.outputs
                        .push_back(Output::Failed(p.token, Failure::UnknownName(name)));
                }
            }
        }
    }

    fn remember(&mut self, key: (String, u64)) {
        if self.seen.len() >= REMEMBERED {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
        self.seen_set.insert(key.clone());
        self.seen.push_back(key);
    }
}

#[cfg(test)]
mod tests;
