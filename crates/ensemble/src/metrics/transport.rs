//! The transport's metrics: frames and bytes in and out (counted on every frame, through
//! handles taken once per node so the hot path does no lookup or allocation), connections
//! opened and closed, failed handshakes, frames dropped towards slow peers.

use metrics::{counter, Counter};

use super::names::*;

/// Handles on the per-frame counters, shared by a node's connection tasks.
#[derive(Clone)]
pub(crate) struct TransportMetrics {
    pub received_bytes: Counter,
    pub received_frames: Counter,
    pub sent_bytes: Counter,
    pub sent_frames: Counter,
}

impl TransportMetrics {
    /// Handles from the recorder installed now.
    pub(crate) fn new() -> Self {
        TransportMetrics {
            received_bytes: counter!(RECEIVED_BYTES),
            received_frames: counter!(RECEIVED_FRAMES),
            sent_bytes: counter!(SENT_BYTES),
            sent_frames: counter!(SENT_FRAMES),
        }
    }
}

impl std::fmt::Debug for TransportMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportMetrics")
    }
}

/// A connection completed its handshake (`dialed`: this node dialled it).
pub(crate) fn connection_opened(dialed: bool) {
    let direction = if dialed { "dialed" } else { "accepted" };
    counter!(OPENED, "direction" => direction).increment(1);
}

/// Why a connection closed, as a label value of [`CLOSE_REASONS`].
pub(crate) fn connection_closed(reason: &'static str) {
    counter!(CLOSED, "reason" => reason).increment(1);
}

/// A handshake failed, for a reason of [`HANDSHAKE_REASONS`].
pub(crate) fn handshake_failed(reason: &'static str) {
    counter!(HANDSHAKES_FAILED, "reason" => reason).increment(1);
}

/// A frame to a slow peer was not sent, for a reason of [`DROP_REASONS`].
pub(crate) fn frame_dropped(reason: &'static str) {
    counter!(DROPPED_FRAMES, "reason" => reason).increment(1);
}
