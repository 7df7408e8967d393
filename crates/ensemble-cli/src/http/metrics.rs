//! The agent's Prometheus recorder: every figure the library records through the `metrics`
//! facade (see `ensemble::metrics` and docs/OPERATIONS.md), in the Prometheus text format,
//! for `GET /metrics`. Histograms have the buckets of [`ensemble::metrics::SECONDS_BUCKETS`].

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The installed recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the process-wide recorder (once per process), before the node starts so that
    /// it sees every metric registered.
    pub fn install() -> Result<Metrics> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                ensemble::metrics::SECONDS_BUCKETS,
            )
            .context("bad histogram buckets")?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        Ok(Metrics { handle })
    }

    /// Reads the process's figures and renders every metric.
    pub fn render(&self) -> String {
        ensemble::metrics::record_process();
        self.handle.render()
    }
}
