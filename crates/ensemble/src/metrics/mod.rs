//! Ensemble's figures through the [`metrics`] facade: whatever recorder the process installed
//! (the agent's Prometheus exporter, or an embedding service's own) sees them.
//!
//! [`METRICS`] lists every metric (name, type, unit, label, meaning). [`crate::Node::start`]
//! describes them to the recorder and registers each at zero, so every series a dashboard
//! queries exists from the start; the driver and the connection tasks record as things happen.
//! A label's values are known in advance (statuses, reasons) except a table's or a
//! singleton's name, whose series appear with the table or singleton. Process metrics (Linux)
//! are read from `/proc/self` when [`record_process`] is called, typically on each scrape.
//!
//! The recorder is process-wide: a process running several nodes sees their counters added
//! up and the gauges of whichever node set them last.

mod membership;
mod names;
mod process;
mod transport;

pub use names::{metric_names, MetricInfo, MetricKind, MetricUnit, METRICS};
pub use process::record_process;

pub(crate) use membership::{member_event, MembershipMetrics};
pub(crate) use names::*;
pub(crate) use transport::{
    connection_closed, connection_opened, frame_dropped, handshake_failed, TransportMetrics,
};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// The buckets (seconds) that suit Ensemble's histograms, from a fast round trip to a slow
/// failure detection; give them to a Prometheus exporter for its `_seconds` histograms (the
/// agent does).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Describes every metric to the installed recorder and registers each known series at zero.
pub(crate) fn register() {
    for m in METRICS {
        let unit = match m.unit {
            MetricUnit::Count => metrics::Unit::Count,
            MetricUnit::Seconds => metrics::Unit::Seconds,
            MetricUnit::Bytes => metrics::Unit::Bytes,
        };
        match m.kind {
            MetricKind::Counter => describe_counter!(m.name, unit, m.help),
            MetricKind::Gauge => describe_gauge!(m.name, unit, m.help),
            MetricKind::Histogram => describe_histogram!(m.name, unit, m.help),
        }
        match m.label {
            None if m.name == BUILD_INFO => {}
            None => zero(m.kind, m.name, None),
            Some((key, values)) => {
                for v in values.iter() {
                    zero(m.kind, m.name, Some((key, v)));
                }
            }
        }
    }
    gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "protocol" => ensemble_proto::wire::PROTOCOL_VERSION.to_string()
    )
    .set(1.0);
    record_process();
}

/// Registers one series of `name` at zero.
fn zero(kind: MetricKind, name: &'static str, label: Option<(&'static str, &'static str)>) {
    let labels: Vec<(&'static str, &'static str)> = label.into_iter().collect();
    match kind {
        MetricKind::Counter => counter!(name, &labels).absolute(0),
        MetricKind::Gauge => gauge!(name, &labels).set(0.0),
        MetricKind::Histogram => {
            let _ = histogram!(name, &labels);
        }
    }
}

/// Registers the series of a table that just opened here.
pub(crate) fn table_opened(table: &str) {
    let label = [("table", table.to_owned())];
    for name in [TABLE_CHANGES, TABLE_WRITES, TABLE_JOINS, TABLE_CONFLICTS] {
        counter!(name, &label).increment(0);
    }
    for name in [TABLE_RECORDS, TABLE_BYTES] {
        gauge!(name, &label).increment(0.0);
    }
    for name in [TABLE_WRITE_SECONDS, TABLE_JOIN_SECONDS] {
        let _ = histogram!(name, &label);
    }
}

/// Records `ops` write operations made through this node to `table`.
pub(crate) fn table_writes(table: &str, ops: usize) {
    counter!(TABLE_WRITES, "table" => table.to_owned()).increment(ops as u64);
}

/// Records a write to `table` that completed after `took`.
pub(crate) fn table_written(table: &str, took: std::time::Duration) {
    histogram!(TABLE_WRITE_SECONDS, "table" => table.to_owned()).record(took.as_secs_f64());
}

/// Records a join of `table` this node coordinated.
pub(crate) fn table_joined(table: &str, took: std::time::Duration, conflicts: u64) {
    let label = [("table", table.to_owned())];
    counter!(TABLE_JOINS, &label).increment(1);
    counter!(TABLE_CONFLICTS, &label).increment(conflicts);
    histogram!(TABLE_JOIN_SECONDS, &label).record(took.as_secs_f64());
}

/// Records a snapshot of discovery: its phase and nodes, and `ended` more `get_nodes` calls
/// that ended with the last result `ok`.
pub(crate) fn discovery(info: &ensemble_proto::discovery::SystemInfo, ended: u64) {
    use ensemble_proto::discovery::Phase;
    let regular = info.phase == Phase::Regular;
    gauge!(DISCOVERY_PHASE, "phase" => "initial").set(if regular { 0.0 } else { 1.0 });
    gauge!(DISCOVERY_PHASE, "phase" => "regular").set(if regular { 1.0 } else { 0.0 });
    gauge!(DISCOVERY_DISCOVERED).set(info.discovered_nodes.len() as f64);
    gauge!(DISCOVERY_UNAVAILABLE).set(info.unavailable_nodes.len() as f64);
    if ended > 0 {
        let result = match info.last_get_nodes_result.as_deref() {
            Some("ok") => "ok",
            _ => "error",
        };
        counter!(DISCOVERY_GET_NODES, "result" => result).increment(ended);
    }
}

/// Records the node tracker's rows by status.
pub(crate) fn tracker_rows(online: usize, offline: usize) {
    gauge!(TRACKER_NODES, "status" => "online").set(online as f64);
    gauge!(TRACKER_NODES, "status" => "offline").set(offline as f64);
}

/// Registers the series of a singleton registered here (not leading yet).
pub(crate) fn singleton_registered(name: &str) {
    let label = [("singleton", name.to_owned())];
    gauge!(SINGLETON_LEADER, &label).set(0.0);
    gauge!(SINGLETON_EPOCH, &label).increment(0.0);
    counter!(SINGLETON_TAKEOVERS, &label).increment(0);
}

/// Records a change of this node's part in a singleton's leadership.
pub(crate) fn singleton_leading(name: &str, epoch: Option<u64>) {
    let label = [("singleton", name.to_owned())];
    gauge!(SINGLETON_LEADER, &label).set(if epoch.is_some() { 1.0 } else { 0.0 });
    counter!(SINGLETON_TAKEOVERS, &label).increment(u64::from(epoch.is_some()));
    if let Some(e) = epoch {
        gauge!(SINGLETON_EPOCH, &label).set(e as f64);
    }
}
