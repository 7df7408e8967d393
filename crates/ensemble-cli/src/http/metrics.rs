//! The agent's Prometheus recorder: its figures in the Prometheus text format, for `GET /metrics`.
//!
//! Values are read from the node when scraped (member counts by status, broadcast counters,
//! frames shed or dropped towards slow peers, connections closed) and rendered by the `metrics` crate's Prometheus
//! exporter.

use anyhow::{Context, Result};
use ensemble::{Node, Status};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The installed recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the process-wide recorder (once per process).
    pub fn install() -> Result<Metrics> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        Ok(Metrics { handle })
    }

    /// Reads the node's figures and renders every metric.
    pub async fn render(&self, node: &Node) -> String {
        let members = node.members();
        for status in [Status::Alive, Status::Suspect, Status::Down, Status::Left] {
            let n = members.iter().filter(|m| m.status == status).count();
            gauge!("ensemble_members", "status" => status.to_string()).set(n as f64);
        }
        if let Ok(b) = node.broadcast_status(None).await {
            gauge!("ensemble_broadcast_neighbours").set(b.neighbours.len() as f64);
            gauge!("ensemble_broadcast_exchanges_running").set(b.exchanges.len() as f64);
            let s = b.stats;
            for (name, v) in [
                ("ensemble_broadcast_sent_total", s.broadcasts),
                ("ensemble_broadcast_delivered_total", s.delivered),
                ("ensemble_broadcast_duplicates_total", s.duplicates),
                ("ensemble_broadcast_grafts_total", s.grafts),
                ("ensemble_broadcast_prunes_total", s.prunes),
                ("ensemble_broadcast_repaired_total", s.repaired),
                ("ensemble_broadcast_exchanges_total", s.exchanges),
                ("ensemble_broadcast_lost_total", s.lost),
                (
                    "ensemble_broadcast_unknown_handler_total",
                    s.unknown_handler,
                ),
                ("ensemble_broadcast_lazy_shed_total", s.lazy_shed),
                ("ensemble_broadcast_shed_frames_total", b.shed_frames),
                ("ensemble_dropped_frames_total", b.dropped_frames),
                ("ensemble_connections_closed_total", b.connections_closed),
            ] {
                counter!(name).absolute(v);
            }
        }
        self.handle.render()
    }
}
