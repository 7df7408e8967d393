//! The calls of Partisan's peer service manager that Ensemble's other calls do not cover:
//! an asynchronous join, membership set from outside (orchestration), capabilities, an encoded
//! view of this node's state, and raw messages to another node's manager.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Bytes;
use ensemble_proto::Member;
use serde::{Deserialize, Serialize};
use tracing::warn;

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
