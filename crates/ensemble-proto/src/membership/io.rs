//! What the membership machine takes and gives: its [`Input`]s, its [`Output`]s, and the
//! [`MemberEvent`]s it reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::member::{Member, NodeName, Status, Tags};
use crate::view::Transition;
use crate::wire::{MembershipMsg, PeerInfo};

/// Something that happened to this node: a message, a connection change, a command, a timer.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A connection to `peer` completed its handshake. `dialed` is the address this node
    /// dialled, if it was the dialer.
    Connected {
        /// Who is on the other end.
        peer: PeerInfo,
        /// Address this node dialled to reach it (None for accepted connections).
        dialed: Option<SocketAddr>,
    },
    /// The connection to `name` closed.
    Disconnected {
        /// Who was on the other end.
        name: NodeName,
    },
    /// A dial asked by [`Output::Dial`] failed (refused, timed out, or the handshake failed).
    DialFailed {
        /// The dialled address.
        addr: SocketAddr,
        /// Nothing listens there: the connection was refused or reset before the handshake
        /// (never set for a timeout).
        no_listener: bool,
    },
    /// A message from a connected peer.
    Message {
        /// The sender.
        from: NodeName,
        /// The message.
        msg: MembershipMsg,
    },
    /// Join the cluster of the node at `addr` (it becomes a seed: retried until reached). The
    /// caller dials it at once itself; the dial's outcome comes back as `Connected` (with
    /// `dialed`) or `DialFailed`, as for the core's own dials.
    Join {
        /// A member's address.
        addr: SocketAddr,
    },
    /// Leave the cluster gracefully: the others will mark this node `left`.
    Leave,
    /// Remove another member from the cluster: it is marked `left` at its current
    /// incarnation everywhere (stale gossip cannot bring it back, nobody redials it), and the
    /// member itself, once it hears, stops instead of refuting ([`Membership::is_removed`]).
    /// Removing this node's own name is a leave.
    Remove(NodeName),
    /// Replace this node's tags (announced as a new incarnation).
    SetTags(Tags),
    /// Timer: call when [`Membership::poll_timeout`] is reached.
    Tick,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `msg` to the connected peer `to`.
    Send {
        /// Peer name.
        to: NodeName,
        /// The message.
        msg: MembershipMsg,
    },
    /// Dial `addr`; answer later with [`Input::Connected`] or [`Input::DialFailed`].
    Dial {
        /// Address to dial.
        addr: SocketAddr,
    },
    /// Close the connection to `name`: the overlay no longer needs it. No
    /// [`Input::Disconnected`] is expected for it.
    Disconnect {
        /// Peer name.
        name: NodeName,
    },
    /// A membership event for the application.
    Event(MemberEvent),
}

/// The kind of a membership event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A member joined, or came back from `down` / `left` (restart or healed partition).
    Up,
    /// A member was declared failed.
    Down,
    /// A member left gracefully.
    Left,
    /// A live member changed address, tags or incarnation.
    Updated,
}

/// A change of another member, as reported to the application.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberEvent {
    /// What happened.
    pub kind: EventKind,
    /// The member after the change.
    pub member: Arc<Member>,
    /// For a `Down`: how long it took this node to declare the member down, from the first
    /// sign of its failure it saw (its connection lost, or its suspicion). Measured by the
    /// runtime (the `ensemble` crate's `Node`), which sees connections; this machine leaves it
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Duration>,
}

impl MemberEvent {
    pub(super) fn from_transition(t: &Transition) -> Option<MemberEvent> {
        let new = &t.new;
        let kind = match t.old.as_deref() {
            None if new.status.is_up() => EventKind::Up,
            None => return None,
            Some(old) if new.status.is_up() && !old.status.is_up() => EventKind::Up,
            Some(old) if new.status == Status::Down && old.status.is_up() => EventKind::Down,
            Some(old) if new.status == Status::Left && old.status != Status::Left => {
                EventKind::Left
            }
            Some(old)
                if new.status.is_up()
                    && (old.incarnation, &old.addr, &old.tags)
                        != (new.incarnation, &new.addr, &new.tags) =>
            {
                EventKind::Updated
            }
            Some(_) => return None,
        };
        Some(MemberEvent {
            kind,
            member: new.clone(),
            detection: None,
        })
    }
}
