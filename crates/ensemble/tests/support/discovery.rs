//! Helpers for discovery tests: fast schedules and nodes with discovery.
#![allow(dead_code)]

use std::time::Duration;

use ensemble::discovery::{Backend, Discovery, DiscoveryConfig, DiscoveryOptions};
use ensemble::Node;

/// A schedule a thousand times faster than the defaults' order of magnitude.
pub fn fast() -> DiscoveryOptions {
    DiscoveryOptions {
        schedule: DiscoveryConfig {
            initial: Duration::from_millis(200),
            after_error: Duration::from_millis(100),
            regular: Duration::from_millis(500),
            after_nodedown: Duration::from_millis(300),
            startup_phase: Duration::from_secs(60),
        },
        get_nodes_timeout: Duration::from_secs(2),
        probe_timeout: Duration::from_millis(500),
        join_timeout: Duration::from_millis(800),
        table_joiner: None,
    }
}

pub fn start(node: &Node, backend: impl Backend) -> Discovery {
    Discovery::start(node.clone(), backend, fast())
}
