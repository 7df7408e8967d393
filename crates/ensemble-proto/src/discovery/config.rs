//! Settings of the discovery schedule, with the defaults of CETS discovery.

use std::time::Duration;

/// Why the next `get_nodes` is scheduled when it is; each kind has its own delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetryKind {
    /// During the startup phase: [`DiscoveryConfig::initial`] (5 s).
    Initial,
    /// The last `get_nodes` failed: [`DiscoveryConfig::after_error`] (1 s).
    AfterError,
    /// Past the startup phase, nothing special: [`DiscoveryConfig::regular`] (5 min).
    Regular,
    /// A node went down less than [`DiscoveryConfig::after_nodedown`] ago: that delay (30 s).
    AfterNodedown,
}

impl RetryKind {
    /// The lowercase name used in the API and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::Initial => "initial",
            RetryKind::AfterError => "after_error",
            RetryKind::Regular => "regular",
            RetryKind::AfterNodedown => "after_nodedown",
        }
    }
}

/// Timings of discovery. The defaults are those of CETS discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Delay between `get_nodes` calls during the startup phase (default 5 s).
    pub initial: Duration,
    /// Delay after a failed `get_nodes` (default 1 s).
    pub after_error: Duration,
    /// Delay past the startup phase (default 5 min).
    pub regular: Duration,
    /// Delay while the last node-down is younger than this (default 30 s).
    pub after_nodedown: Duration,
    /// Length of the startup phase (default 5 min); it ends early as soon as a peer reports
    /// that it is past its own startup phase.
    pub startup_phase: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            initial: Duration::from_secs(5),
            after_error: Duration::from_secs(1),
            regular: Duration::from_secs(300),
            after_nodedown: Duration::from_secs(30),
            startup_phase: Duration::from_secs(300),
        }
    }
}

impl DiscoveryConfig {
    /// The delay of one retry kind.
    pub fn delay(&self, kind: RetryKind) -> Duration {
        match kind {
            RetryKind::Initial => self.initial,
            RetryKind::AfterError => self.after_error,
            RetryKind::Regular => self.regular,
            RetryKind::AfterNodedown => self.after_nodedown,
        }
    }
}
