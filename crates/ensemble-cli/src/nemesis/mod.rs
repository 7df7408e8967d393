//! `ensemble nemesis`: a Jepsen-style fault campaign over real agents (docs/RELIABILITY.md).

pub mod calls;
pub mod history;
pub mod tables;
pub mod workload;
