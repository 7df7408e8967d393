//! The calls of Partisan's peer service manager that Ensemble's other calls do not cover:
//! an asynchronous join, membership set from outside (orchestration), capabilities, an encoded
//! view of this node's state, and raw messages to another node's manager.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Bytes;
use ensemble_proto::member::Tags;
use ensemble_proto::topology;
use ensemble_proto::Member;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::api::membership::with_role;
use crate::api::messaging::Mailbox;
use crate::command::{Command, DriverMsg, MembershipCommand};
use crate::error::Error;
use crate::node::Node;

/// The reserved name raw manager messages travel under.
const MANAGER: &str = "ensemble.manager";

/// The most addresses [`Node::update_members`] takes at once.
pub const MAX_UPDATE_MEMBERS: usize = 10_000;

/// What [`Node::update_members`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersUpdate {
    /// Addresses no live member had: joins started (asynchronously, as [`Node::join_async`]).
    pub joining: Vec<SocketAddr>,
    /// Live members whose address was not in the list: removed (as [`Node::remove`]).
    pub removed: Vec<String>,
}

/// A feature a node may or may not offer, for [`Node::supports_capability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Acknowledged named messages, retransmitted until acked ([`Node::forward_message`]).
    AcknowledgedMessages,
    /// Named messaging channels besides the default one ([`crate::Config::channels`]).
    Channels,
    /// Named messages to members this node is not connected to are relayed (client-server).
    Relay,
    /// A client dialled by a client refers it to servers (client-server).
    Referral,
    /// Partitions injected at this node ([`Node::inject_partition`]).
    PartitionInjection,
    /// Callbacks on this node's own connections ([`Node::on_connection_up`]).
    ConnectionEvents,
    /// Replicated tables ([`Node::table`]).
    Tables,
    /// Cluster-wide singletons ([`Node::singleton`]).
    Singletons,
}

/// An encoded view of a node's state ([`Node::get_local_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    /// The node.
    pub name: String,
    /// Every member it knows, itself included, with down and left ones until they expire.
    pub members: Vec<Member>,
    /// The members it holds a connection to.
    pub connections: Vec<String>,
}

impl LocalState {
    /// Decodes what [`Node::get_local_state`] encoded.
    pub fn decode(bytes: &[u8]) -> Result<LocalState, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::Codec {
            table: "local state".into(),
            reason: e.to_string(),
        })
    }
}

impl Node {
    /// Partisan's `join`: starts joining the node at `addr` and returns at once; a failure is
    /// logged. [`Node::join`] is Partisan's `sync_join`: it waits for the handshake.
    pub async fn join_async(&self, addr: SocketAddr) -> Result<(), Error> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let cmd = Command::Membership(MembershipCommand::Join { addr, reply });
        self.driver_sender()
            .send(DriverMsg::Command(cmd))
            .await
            .map_err(|_| Error::Stopped)?;
        tokio::spawn(async move {
            if let Ok(Err(e)) = rx.await {
                warn!("joining {addr} failed: {e}");
            }
        });
        Ok(())
    }

    /// Partisan's `update_members`: sets the membership from outside, as orchestration does.
    /// Every address of `addrs` that no live member has is joined (asynchronously), and every
    /// live member but this node whose address is not in `addrs` is removed: it is marked
    /// `left` everywhere and stops (see [`Node::remove`]). More than
    /// [`MAX_UPDATE_MEMBERS`] addresses are refused with [`Error::Config`].
    pub async fn update_members(&self, addrs: &[SocketAddr]) -> Result<MembersUpdate, Error> {
        if addrs.len() > MAX_UPDATE_MEMBERS {
            return Err(Error::Config(format!(
                "update_members takes at most {MAX_UPDATE_MEMBERS} addresses, not {}",
                addrs.len()
            )));
        }
        let wanted: BTreeSet<SocketAddr> = addrs.iter().copied().collect();
        let live: Vec<Member> = self.members_for_orchestration();
        let known: BTreeSet<SocketAddr> = live.iter().map(|m| m.addr).collect();
        let mut update = MembersUpdate::default();
        for addr in &wanted {
            if !known.contains(addr) && *addr != self.addr() {
                self.join_async(*addr).await?;
                update.joining.push(*addr);
            }
        }
        for m in &live {
            if m.name != self.name() && !wanted.contains(&m.addr) {
                self.remove(&m.name).await?;
                update.removed.push(m.name.clone());
            }
        }
        Ok(update)
    }

    /// Partisan's `reserve`: reserves a connection slot for a member carrying the tag `tag`
    /// (any value): this node keeps a connection to the live member with that tag nearest it
    /// on the hash ring (a server, in a client-server topology), besides its usual
    /// connections, and the other side keeps it too. In a full mesh of up to 65 members every
    /// node is connected already; the slot matters in a partial view and for clients. The
    /// reservation travels in this node's tag `ensemble.reserve` and lasts until the node
    /// stops; [`Node::set_tags`] keeps it. At most 8 per node ([`Error::NoAvailableSlots`]
    /// beyond); reserving a tag twice is one reservation. Call it from one task at a time.
    pub async fn reserve(&self, tag: &str) -> Result<(), Error> {
        if tag.is_empty() || tag.len() > 128 || tag.contains(',') || tag.starts_with("ensemble.") {
            return Err(Error::Config(format!(
                "cannot reserve a slot for tag {tag:?}: 1 to 128 bytes, no comma, not ensemble.*"
            )));
        }
        let me = self.local_member();
        let mut slots: Vec<&str> = topology::reservations(&me).collect();
        if slots.contains(&tag) {
            return Ok(());
        }
        if slots.len() >= topology::MAX_RESERVATIONS {
            return Err(Error::NoAvailableSlots(topology::MAX_RESERVATIONS));
        }
        slots.push(tag);
        let mut tags = me.tags.as_map().clone();
        tags.remove(topology::ROLE_TAG);
        let value = slots.join(",");
        tags.insert(topology::RESERVE_TAG.into(), value.clone());
        let tags = Tags::new(tags)?;
        with_role(tags.clone(), self.inner.role).check()?;
        self.set_all_tags(tags).await?;
        // Returns once the member list shows it, so that the next call builds on it.
        let shown = || self.local_member().tags.get(topology::RESERVE_TAG) == Some(&value);
        let wait = async {
            while !shown() {
                self.changed().await?;
            }
            Ok::<(), Error>(())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), wait).await {
            Ok(r) => r,
            Err(_) => Ok(()), // applied; the published list just lags
        }
    }

    /// Partisan's `members_for_orchestration`: the live (alive or suspect) members, this node
    /// included, in name order, with their addresses and tags (the role among them).
    pub fn members_for_orchestration(&self) -> Vec<Member> {
        let mut members = self.members();
        members.retain(|m| m.status.is_up());
        members
    }

    /// Partisan's `supports_capability`: whether this node offers `capability` (relays and
    /// referrals only in a client-server topology).
    pub fn supports_capability(&self, capability: Capability) -> bool {
        match capability {
            Capability::Relay | Capability::Referral => self.inner.role.is_some(),
            Capability::AcknowledgedMessages
            | Capability::Channels
            | Capability::PartitionInjection
            | Capability::ConnectionEvents
            | Capability::Tables
            | Capability::Singletons => true,
        }
    }

    /// Partisan's `get_local_state`: this node's view (its name, the members it knows and its
    /// connections), encoded; [`LocalState::decode`] reads it.
    pub async fn get_local_state(&self) -> Result<Vec<u8>, Error> {
        let state = LocalState {
            name: self.name().to_owned(),
            members: self.members(),
            connections: self.connections().await?,
        };
        postcard::to_allocvec(&state).map_err(|e| Error::Codec {
            table: "local state".into(),
            reason: e.to_string(),
        })
    }

    /// Partisan's `send_message`: sends `payload` to the manager of member `to` (fire and
    /// forget, relayed in a client-server topology), where [`Node::receive_messages`] hands
    /// it out. Fails as [`Node::cast_message`] does.
    pub async fn send_message(&self, to: &str, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.cast_reserved(to, MANAGER, payload.into()).await
    }

    /// Partisan's `receive_message`: the messages other nodes send to this node's manager with
    /// [`Node::send_message`]. One receiver per node at a time ([`Error::DuplicateName`]
    /// otherwise); dropping it stops the delivery.
    pub async fn receive_messages(&self) -> Result<Mailbox, Error> {
        self.register_any(MANAGER).await
    }
}
