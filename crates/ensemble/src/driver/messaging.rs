//! The driver's side of named messaging: mailboxes registered by name; messages to send,
//! checked against the member list and fault injection, then handed to the core (waiting for
//! the connection, or for the acknowledgement, when they must); and the core's deliveries,
//! acks and failures out to mailboxes and waiting callers.

use std::time::{Duration, Instant};

use ensemble_proto::messaging::{self, Failure};
use ensemble_proto::stack::Input;
use ensemble_proto::wire::{self, DirectMsg, Message};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;
use tracing::warn;

use super::Driver;
use crate::command::{Envelope, MessagingCommand, Outgoing, MAILBOX_CAPACITY};
use crate::error::Error;
use crate::metrics::{MSG_ACKED, MSG_DELIVERED, MSG_DROPPED, MSG_FAILED, MSG_RTT, MSG_SENT};
use metrics::{counter, histogram};

/// A caller waiting for an acknowledgement.
pub(super) struct AckWaiter {
    to: String,
    name: String,
    timeout: Duration,
    /// When it was sent (for the round-trip histogram).
    sent: Instant,
    /// None for a cast that waits for its connection: its failure is logged.
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

/// How long a cast to a member that is up but not connected yet waits for the connection.
const CAST_WAIT: Duration = Duration::from_secs(5);

impl Driver {
    pub(super) fn on_messaging_command(&mut self, now: Instant, c: MessagingCommand) {
        match c {
            MessagingCommand::RegisterName { name, tx, reply } => {
                let result = if self.mailboxes.get(&name).is_some_and(|m| !m.is_closed()) {
                    Err(Error::DuplicateName(name))
                } else {
                    self.mailboxes.insert(name.clone(), tx);
                    let input = messaging::Input::Register(name);
                    self.core.handle(now, Input::Messaging(input));
                    Ok(())
                };
                let _ = reply.send(result);
            }
            MessagingCommand::UnregisterName { name } => {
                if self.mailboxes.get(&name).is_some_and(|m| m.is_closed()) {
                    self.mailboxes.remove(&name);
                    let input = messaging::Input::Unregister(name);
                    self.core.handle(now, Input::Messaging(input));
                }
            }
            MessagingCommand::Cast(out) => {
                // The caller returned already: a refusal (partitioned away meanwhile) is logged.
                let (tx, mut rx) = oneshot::channel();
                self.send_direct(now, out, None, tx);
                if let Ok(Err(e)) = rx.try_recv() {
                    warn!("a message cast was not sent: {e}");
                }
            }
            MessagingCommand::SendDirect { out, ack, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.send_direct(now, out, ack, tx);
            }
        }
    }

    pub(super) fn send_direct(
        &mut self,
        now: Instant,
        out: Outgoing,
        ack: Option<Duration>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        let Outgoing {
            to,
            name,
            payload,
            channel,
        } = out;
        let up = self
            .core
            .membership()
            .member(&to)
            .is_some_and(|m| m.status.is_up());
        let me = self.core.membership().local().name.clone();
        if to == me {
            // To this node itself: straight to the mailbox.
            let result = match self.mailboxes.get(&name).filter(|m| !m.is_closed()) {
                Some(mb) => {
                    let e = Envelope {
                        from: me,
                        name,
                        payload,
                    };
                    let _ = mb.try_send(e);
                    Ok(())
                }
                None => Err(Error::UnknownName { node: me, name }),
            };
            let _ = reply.send(result);
            return;
        }
        if !up || self.faults.cut_off(&to) {
            let _ = reply.send(Err(Error::UnknownNode(to)));
            return;
        }
        // Connected, or reachable through a relay (client-server).
        let routable = self.conns.contains_key(&to)
            || self
                .core
                .route(&to)
                .is_some_and(|hop| self.conns.contains_key(hop));
        let (timeout, reply) = match ack {
            Some(timeout) => (timeout, Some(reply)),
            // A cast to a member not connected yet (it just joined) waits for the connection
            // like an acknowledged message, and a failure is logged instead of returned.
            None if !routable => {
                let _ = reply.send(Ok(()));
                (CAST_WAIT, None)
            }
            None => {
                // Handed to the connection's queue: done, as far as a cast goes.
                let _ = reply.send(Ok(()));
                counter!(MSG_SENT).increment(1);
                let input = messaging::Input::Send {
                    to,
                    name,
                    payload,
                    ack: None,
                    channel,
                };
                self.core.handle(now, Input::Messaging(input));
                return;
            }
        };
        let token = self.next_token();
        let waiter = AckWaiter {
            to: to.clone(),
            name: name.clone(),
            timeout,
            sent: now,
            reply,
        };
        self.ack_waiters.insert(token, waiter);
        counter!(MSG_SENT).increment(1);
        let ack = Some((token, crate::time::deadline(now, timeout)));
        let input = messaging::Input::Send {
            to,
            name,
            payload,
            ack,
            channel,
        };
        self.core.handle(now, Input::Messaging(input));
    }

    /// True (and logged) if `msg`, a named message, would not fit in a frame: it is not sent,
    /// since the peer would close the connection on it (and an acknowledged one would go
    /// again on every reconnect). The public API refuses such messages before they get here
    /// (`limits::named_message_len`); this is the last guard.
    pub(super) fn oversized(&self, to: &str, msg: &Message) -> bool {
        let payload = match msg {
            Message::Direct(
                DirectMsg::Cast { payload, .. } | DirectMsg::Forward { payload, .. },
            ) => payload,
            Message::Relay(r) => match &r.msg {
                DirectMsg::Cast { payload, .. } | DirectMsg::Forward { payload, .. } => payload,
                _ => return false,
            },
            _ => return false,
        };
        let max = self.shared.max_frame;
        // Names and ids take far less than this: measured only when it may matter.
        if payload.len() + 4096 <= max {
            return false;
        }
        let size = wire::message_len(msg);
        if size <= max {
            return false;
        }
        warn!(peer = %to, "a named message of {size} bytes to {to} was not sent: over the frame limit of {max} bytes");
        true
    }

    pub(super) fn on_messaging(&mut self, out: messaging::Output) {
        match out {
            messaging::Output::Deliver {
                from,
                name,
                payload,
            } => {
                if name == super::keys::KEYS {
                    return self.on_key_message(Instant::now(), from, payload);
                }
                if name == super::broadcast_info::BROADCAST_INFO {
                    return self.on_broadcast_info_message(Instant::now(), from, payload);
                }
                let Some(mb) = self.mailboxes.get(&name) else {
                    counter!(MSG_DROPPED, "reason" => "no_handler").increment(1);
                    return;
                };
                let e = Envelope {
                    from,
                    name: name.clone(),
                    payload,
                };
                let sent = mb.try_send(e);
                if sent.is_ok() {
                    counter!(MSG_DELIVERED).increment(1);
                }
                if let Err(TrySendError::Full(_)) = sent {
                    counter!(MSG_DROPPED, "reason" => "mailbox_full").increment(1);
                    warn!(
                        "mailbox {name:?} is full ({} messages); message dropped",
                        MAILBOX_CAPACITY
                    );
                }
            }
            messaging::Output::Acked(token) => {
                let waiter = self.ack_waiters.remove(&token);
                counter!(MSG_ACKED).increment(1);
                if let Some(w) = &waiter {
                    histogram!(MSG_RTT).record(w.sent.elapsed().as_secs_f64());
                }
                if let Some(reply) = waiter.and_then(|w| w.reply) {
                    let _ = reply.send(Ok(()));
                }
            }
            messaging::Output::Failed(token, failure) => {
                let reason = match failure {
                    Failure::UnknownName(_) => "unknown_name",
                    Failure::Timeout => "timeout",
                };
                counter!(MSG_FAILED, "reason" => reason).increment(1);
                if let Some(w) = self.ack_waiters.remove(&token) {
                    let err = match failure {
                        Failure::UnknownName(name) => Error::UnknownName { node: w.to, name },
                        Failure::Timeout => Error::Timeout {
                            node: w.to,
                            name: w.name,
                            after: w.timeout,
                        },
                    };
                    match w.reply {
                        Some(reply) => {
                            let _ = reply.send(Err(err));
                        }
                        None => warn!("a message cast earlier was not delivered: {err}"),
                    }
                }
            }
            messaging::Output::CastRejected { node, name } => {
                counter!(MSG_FAILED, "reason" => "unknown_name").increment(1);
                warn!("a message cast to {name:?} on {node} was dropped there: no handler has that name");
            }
            // The stack hands sends out as frames (`Output::Send`).
            messaging::Output::Send { .. } => {}
        }
    }
}
