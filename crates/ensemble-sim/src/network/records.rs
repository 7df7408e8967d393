//! What a simulation is set up with ([`SimConfig`]) and what it records of the nodes
//! (membership events, broadcast deliveries, singleton events).

use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::broadcast::events::UserEvent;
use ensemble_proto::broadcast::BroadcastConfig;
use ensemble_proto::singleton::{self, SingletonConfig};
use ensemble_proto::table::TableConfig;
use ensemble_proto::{Config, EventKind};

use super::NodeId;

/// A membership event reported by one simulated node about another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimEvent {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The node that reported it.
    pub observer: NodeId,
    /// What happened.
    pub kind: EventKind,
    /// The node it happened to.
    pub target: NodeId,
    /// The target's incarnation in the event.
    pub incarnation: u64,
}

/// Settings of a simulated network.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// One-way latency of every message.
    pub latency: Duration,
    /// Uniform jitter added to the latency (0 to this much).
    pub jitter: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// How long a dial to a hung or unreachable node takes to fail.
    pub dial_timeout: Duration,
    /// Seed of the network's and the nodes' RNGs.
    pub seed: u64,
    /// Membership settings of every node.
    pub membership: Config,
    /// Broadcast settings of every node.
    pub broadcast: BroadcastConfig,
    /// Replicated-table settings of every node.
    pub tables: TableConfig,
    /// Singleton settings of every node.
    pub singletons: SingletonConfig,
}

/// A broadcast message delivered at a simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDelivery {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The node it was delivered at.
    pub node: NodeId,
    /// The message id.
    pub id: Bytes,
    /// Hops from its root.
    pub round: u32,
    /// True if anti-entropy delivered it.
    pub repaired: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            dial_timeout: Duration::from_secs(2),
            seed: 1,
            membership: Config::default(),
            broadcast: BroadcastConfig::default(),
            tables: TableConfig::default(),
            singletons: SingletonConfig::default(),
        }
    }
}

/// A singleton event on a node, at a simulated time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSingletonEvent {
    /// Simulated time since the start.
    pub at: Duration,
    /// The node.
    pub node: NodeId,
    /// The singleton.
    pub name: String,
    /// What happened.
    pub event: singleton::SingletonEvent,
}

/// A user event delivered (in order, by its node's event log) at a simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUserEvent {
    /// The node it was delivered at.
    pub node: NodeId,
    /// The event.
    pub event: UserEvent,
}
