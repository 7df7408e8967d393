//! A deterministic simulator of Ensemble clusters.
//!
//! It drives the real [`ensemble_proto::Stack`] (every protocol, the code the runtime runs)
//! over a virtual clock and a seeded RNG: the same seed gives the same run, event for event.
//! Connections follow the runtime's rules too: when two nodes dial each other at once, both
//! keep the connection [`ensemble_proto::membership::keeps_new`] picks.
//! The network model has per-message latency and jitter, loss, partitions (traffic between two
//! groups is dropped and dials time out, as with a firewall dropping packets), crashes
//! (connections close, dials are refused), pauses (a hung process: nothing is read, nothing
//! closes) and restarts (a new incarnation on the same address).

#![warn(missing_docs)]

pub mod broadcast;
pub mod client_server;
mod network;
pub mod scenario;

pub use broadcast::{BroadcastReport, BroadcastScenario};
pub use client_server::{ClientServerConfig, ClientServerReport};
pub use network::{NodeId, Sim, SimConfig, SimDelivery, SimEvent, SimSingletonEvent, SimUserEvent};
pub use scenario::{Report, Scenario, ScenarioConfig, Start};
