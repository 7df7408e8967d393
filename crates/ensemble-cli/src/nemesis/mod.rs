//! `ensemble nemesis`: a Jepsen-style fault campaign over real agents (docs/RELIABILITY.md).

pub mod broadcast;
pub mod calls;
pub mod check_util;
pub mod history;
pub mod messaging;
pub mod query;
pub mod tables;
pub mod workload;
