//! The driver's connection table: connections that come up (of two connections to one peer,
//! which one both sides keep) and go down, dials that failed, and the send path (announcements
//! shed to a peer whose queue is filling, small messages sealed straight into a connection's
//! outbox, the rest queued on the peer's send queue for the message's channel).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ensemble_proto::membership::{keeps_new, Connection};
use ensemble_proto::stack::Input;
use ensemble_proto::wire::{Message, PeerInfo};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::warn;

use super::Driver;
use crate::error::Error;
use crate::transport::conn::ConnHandle;
use crate::transport::outbox::{Hold, Outbox};

/// An established connection the driver keeps.
pub(super) struct Active {
    id: u64,
    dialer: String,
    /// The peer as it announced itself in the handshake.
    peer: PeerInfo,
    /// Send queues, one per channel (see `transport::conn::Lanes`).
    lanes: Vec<mpsc::Sender<Message>>,
    /// The connection's write side, for small messages written at once.
    pub(super) outbox: Arc<Outbox>,
}

impl Driver {
    pub(super) fn on_conn_up(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        peer: PeerInfo,
        dialed: Option<SocketAddr>,
    ) {
        if self.faults.cut_off(&peer.name) {
            // Dropping the handle closes the connection.
            if let Some(addr) = dialed {
                let reason = format!("{} is partitioned away (fault injection)", peer.name);
                self.on_dial_failed(now, addr, reason, false);
            }
            return;
        }
        crate::metrics::connection_opened(dialed.is_some());
        if let Some(addr) = dialed {
            for w in self.join_waiters.remove(&addr).unwrap_or_default() {
                let _ = w.send(Ok(peer.name.clone()));
            }
        }
        // A second connection to the same name: the rule the simulator runs too (a restart's
        // newer process wins; of two to one process, both ends keep the smaller name's dial).
        let keep_new = self.conns.get(&peer.name).is_none_or(|old| {
            let old = Connection {
                dialer: &old.dialer,
                peer: &old.peer,
            };
            let new = Connection {
                dialer: &conn.dialer,
                peer: &peer,
            };
            keeps_new(&old, &new)
        });
        if keep_new {
            self.membership_metrics.connection_up(&peer.name);
            let active = Active {
                id: conn.id,
                dialer: conn.dialer,
                peer: peer.clone(),
                lanes: conn.lanes,
                outbox: conn.outbox,
            };
            self.conns.insert(peer.name.clone(), active);
        }
        let peer = match (keep_new, self.conns.get(&peer.name)) {
            (false, Some(a)) => a.peer.clone(),
            _ => peer,
        };
        self.core.handle(now, Input::Connected { peer, dialed });
    }

    /// A connection closed: forgotten if it is the one kept for its peer (a replaced one's
    /// close changes nothing).
    pub(super) fn on_conn_down(&mut self, now: Instant, id: u64, name: String) {
        if self.conns.get(&name).is_some_and(|a| a.id == id) {
            self.membership_metrics.connection_lost(now, &name);
            self.conns.remove(&name);
            self.core.handle(now, Input::Disconnected { name });
        }
    }

    /// A dial failed (`no_listener`: nothing listens there): its joiners hear why, and the core
    /// schedules the next dial.
    pub(super) fn on_dial_failed(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        reason: String,
        no_listener: bool,
    ) {
        for w in self.join_waiters.remove(&addr).unwrap_or_default() {
            let _ = w.send(Err(Error::Join {
                addr,
                reason: reason.clone(),
            }));
        }
        self.core
            .handle(now, Input::DialFailed { addr, no_listener });
    }

    /// Carries out one of the core's sends (see the module's doc).
    #[inline]
    pub(super) fn send(&mut self, to: String, msg: Message) {
        if self.faults.drops_outbound(&to, &msg) {
            return;
        }
        let Some(active) = self.conns.get(&to) else {
            return;
        };
        // A peer whose queue is filling gets no announcements (anti-entropy will
        // repair), so payloads and membership keep flowing.
        let lazy = matches!(&msg, Message::Broadcast(b) if b.is_lazy());
        let tx = &active.lanes[lane_of(&self.shared.channels, &msg)];
        if lazy && tx.capacity() < tx.max_capacity() / 4 {
            self.shed_frames += 1;
            crate::metrics::frame_dropped("lazy_shed");
            if self.shed_frames.is_power_of_two() {
                let n = self.shed_frames;
                warn!(peer = %to, "send queue to {to} is filling; shed {n} lazy broadcast frames so far");
            }
            return;
        }
        // Small messages are written after the batch (`drain_outputs`), all those to one peer
        // in one write.
        let msg = match active.outbox.hold(msg) {
            Hold::Held { first: true } => {
                self.held.push(active.outbox.clone());
                return;
            }
            Hold::Held { first: false } => return,
            Hold::Refused(msg) => msg,
        };
        // A peer that does not read may not make this node hold without bound: past the byte
        // limit, messages are dropped like those past a full queue (retransmission and
        // anti-entropy repair what matters).
        let bytes = msg.approx_len();
        if active.outbox.queued_bytes() + bytes > self.shared.send_queue_bytes {
            self.dropped_frames += 1;
            crate::metrics::frame_dropped("queue_bytes");
            if self.dropped_frames.is_power_of_two() {
                let (n, held) = (self.dropped_frames, active.outbox.queued_bytes());
                warn!(peer = %to, "send queue to {to} holds {held} bytes; {n} frames dropped so far");
            }
            return;
        }
        // A closed queue means the connection just ended; its close is on its way.
        active.outbox.queue(bytes);
        let sent = tx.try_send(msg);
        if sent.is_err() {
            active.outbox.unqueue(bytes);
        }
        if let Err(TrySendError::Full(_)) = sent {
            self.dropped_frames += 1;
            crate::metrics::frame_dropped("queue_full");
            if self.dropped_frames.is_power_of_two() {
                let n = self.dropped_frames;
                warn!(peer = %to, "send queue to {to} is full; {n} frames dropped so far");
            }
        }
    }
}

/// The send queue a message goes to: its channel's, or lane 0 (the default channel, acks and
/// every other protocol; also a channel this node did not declare, as a relay may see).
#[inline]
fn lane_of(channels: &[String], msg: &Message) -> usize {
    msg.channel()
        .and_then(|c| channels.iter().position(|d| d == c))
        .map_or(0, |i| i + 1)
}
