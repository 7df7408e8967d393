//! The messages singleton activators exchange.

use serde::{Deserialize, Serialize};

/// Messages of the singleton protocol. `name` is the singleton's name; `epoch` a fencing epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SingletonMsg {
    /// The singletons the sender runs an activator for (sent when a connection opens and when
    /// one registers): the sender is a candidate for each.
    Hosted {
        /// The sender's activators.
        names: Vec<Hosting>,
    },
    /// The sender no longer runs an activator for `name`.
    Unhosted {
        /// The singleton.
        name: String,
    },
    /// "I lead `name` at `epoch`": sent when leadership starts, to newly met candidates, and
    /// (with the majority rule) every heartbeat to renew the lease.
    Claim {
        /// The singleton.
        name: String,
        /// The leader's fencing epoch.
        epoch: u64,
        /// The heartbeat's number (majority rule), echoed by `ClaimAck`.
        seq: u64,
    },
    /// A follower supports the claim at `epoch` (majority rule: renews the leader's lease).
    ClaimAck {
        /// The singleton.
        name: String,
        /// The epoch acknowledged.
        epoch: u64,
        /// The heartbeat acknowledged.
        seq: u64,
    },
    /// A claim below an epoch the receiver has seen: a later leadership exists (or existed),
    /// so the claimant steps down and takes over again, above `highest`, if it still should.
    Stale {
        /// The singleton.
        name: String,
        /// The highest epoch the sender has seen.
        highest: u64,
    },
    /// Majority rule: a candidate asks for votes to lead at `epoch`.
    Prepare {
        /// The singleton.
        name: String,
        /// The epoch it would lead at.
        epoch: u64,
    },
    /// Answer to `Prepare`.
    Vote {
        /// The singleton.
        name: String,
        /// The epoch asked for.
        epoch: u64,
        /// Whether the vote is given.
        granted: bool,
        /// The highest epoch the voter has seen (a refused candidate starts above it).
        highest: u64,
    },
    /// The leader at `epoch` steps down (graceful hand-over: the next candidate takes over at
    /// once, without waiting for failure detection).
    Resign {
        /// The singleton.
        name: String,
        /// The epoch that ends.
        epoch: u64,
    },
}

/// One activator, as `Hosted` announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosting {
    /// The singleton.
    pub name: String,
    /// Distinguishes this activator from an earlier one of the same node (a restart).
    pub instance: u64,
    /// The highest epoch the sender has seen, so a newcomer starts above it.
    pub highest: u64,
    /// The sender's majority rule (expected candidates), which every node must share.
    pub majority_of: Option<u64>,
}

impl SingletonMsg {
    /// A short name of the message's kind, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            SingletonMsg::Hosted { .. } => "singleton.hosted",
            SingletonMsg::Unhosted { .. } => "singleton.unhosted",
            SingletonMsg::Claim { .. } => "singleton.claim",
            SingletonMsg::ClaimAck { .. } => "singleton.claim_ack",
            SingletonMsg::Prepare { .. } => "singleton.prepare",
            SingletonMsg::Vote { .. } => "singleton.vote",
            SingletonMsg::Resign { .. } => "singleton.resign",
            SingletonMsg::Stale { .. } => "singleton.stale",
        }
    }
}
