//! Sans-IO protocol state machines of Ensemble.
//!
//! Nothing here does I/O, reads a clock or uses a global random number generator: every state
//! machine takes the current time as an argument and gets its RNG seed at construction, so the
//! same code runs under the tokio runtime (crate `ensemble`), in the deterministic simulator
//! (crate `ensemble-sim`) and in unit tests.
//!
//! - [`member`]: a member (name, address, incarnation, status, tags).
//! - [`view`]: the membership view, a CRDT of members.
//! - [`detector`]: the phi accrual failure detector.
//! - [`membership`]: the membership protocol ([`Membership`]): heartbeats, suspicion, indirect
//!   probes, refutation, gossip, anti-entropy, dialling.
//! - [`broadcast`]: Plumtree epidemic broadcast ([`broadcast::Plumtree`]) and its handlers,
//!   among them Serf-style user events ([`broadcast::events::EventLog`]).
//! - [`discovery`]: the discovery schedule and bookkeeping ([`discovery::Discovery`]).
//! - [`messaging`]: named messaging (cast, acknowledged forward) to handlers on other nodes.
//! - [`table`]: replicated tables (after CETS): local reads, replicated writes, joins with
//!   conflict handlers, re-merge after splits ([`table::Tables`]).
//! - [`singleton`]: cluster singletons (after Stoker's activator): one leader per name, fencing
//!   epochs, hand-over, the majority rule ([`singleton::Singletons`]).
//! - [`query`]: queries (Serf's `query`): a request fanned out by broadcast, acks and
//!   responses straight back to the origin ([`query::Queries`]).
//! - [`stack`]: every protocol of one node, composed behind one input and output ([`Stack`]).
//!
//! Every protocol has the same shape: a struct that takes `handle(now, Input)` and gives
//! `poll_output() -> Option<Output>` and `poll_timeout() -> Option<Instant>`, with its own
//! `Input` and `Output` enums; everything else it offers only reads.
//! - [`wire`]: the frames and messages nodes exchange, and their encoding.

#![warn(missing_docs)]

pub mod broadcast;
pub mod config;
pub mod detector;
pub mod discovery;
#[doc(hidden)]
pub mod fuzzing;
pub mod member;
pub mod membership;
pub mod messaging;
mod overlay;
mod probe;
pub mod query;
mod shared_bytes;
pub mod singleton;
pub mod stack;
pub mod table;
pub mod topology;
pub mod view;
pub mod wire;

pub use config::Config;
pub use member::{Member, MemberError, NodeName, Status, Tags};
pub use membership::{EventKind, MemberEvent, Membership};
pub use stack::{Stack, StackConfig};
