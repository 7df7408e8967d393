//! The library's metrics as an embedding service's own exporter sees them: a Prometheus
//! recorder installed by the test (as a service would) renders every metric the library
//! describes from the start, then the figures of a real cluster over TCP on 127.0.0.1.

use std::time::Duration;

use ensemble::discovery::StaticBackend;
use ensemble::metrics::{metric_names, MetricKind, METRICS, SECONDS_BUCKETS};
use ensemble::TableOptions;

const LONG: Duration = Duration::from_secs(30);
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod common;
#[path = "support/discovery.rs"]
mod support;
use common::*;

/// The value of the series `series` (name and labels as rendered) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn install() -> PrometheusHandle {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .unwrap()
        .install_recorder()
        .expect("the only recorder of this test binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedding_services_exporter_sees_every_metric_from_the_start_then_the_clusters_figures()
{
    let metrics = install();
    let nodes = cluster(2).await;
    let text = metrics.render();
    for m in METRICS {
        // A table's or singleton's series appear with it; every other is there at once.
        if matches!(m.label, Some((_, []))) {
            continue;
        }
        let name = match m.kind {
            MetricKind::Histogram => format!("{}_count", m.name),
            _ => m.name.to_string(),
        };
        assert!(
            text.lines().any(|l| l.starts_with(&name)),
            "{name} is missing from the start:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {} {}", m.name, m.help)),
            "{} has no description",
            m.name
        );
    }
    assert!(metric_names().all(|n| n.starts_with("ensemble_") || n.starts_with("process_")));
    assert_eq!(
        value(&text, r#"ensemble_members{status="alive"}"#),
        Some(2.0)
    );
    assert!(text.contains(r#"ensemble_build_info{version=""#), "{text}");
    assert!(value(&text, "ensemble_sent_bytes_total").unwrap() > 0.0);
    assert!(value(&text, "ensemble_received_frames_total").unwrap() > 0.0);
    assert!(
        value(
            &text,
            r#"ensemble_connections_opened_total{direction="dialed"}"#
        )
        .unwrap()
            > 0.0
    );

    // Messaging: an acknowledged send counts as sent, delivered, acked, with its round trip.
    let mut jobs = nodes[1].register("jobs").await.unwrap();
    nodes[0]
        .forward_message("n1", "jobs", "x", Duration::from_secs(10))
        .await
        .unwrap();
    jobs.recv().await.unwrap();
    let text = metrics.render();
    assert_eq!(value(&text, "ensemble_messages_acked_total"), Some(1.0));
    assert_eq!(value(&text, "ensemble_messages_delivered_total"), Some(1.0));
    assert_eq!(
        value(&text, "ensemble_message_round_trip_seconds_count"),
        Some(1.0)
    );

    // Tables: a write through n0 is counted and timed; n1's replica joins n0's by itself, a
    // join timed and counted; records and bytes follow the replicas (both nodes of this
    // process set the same gauge: both hold the record).
    let carts = nodes[0]
        .table::<String, String>("carts", TableOptions::set())
        .await
        .unwrap();
    carts.insert("k".into(), "v".into()).await.unwrap();
    let text = metrics.render();
    assert_eq!(
        value(&text, r#"ensemble_table_writes_total{table="carts"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"ensemble_table_write_seconds_count{table="carts"}"#
        ),
        Some(1.0)
    );
    let other = nodes[1]
        .table::<String, String>("carts", TableOptions::set())
        .await
        .unwrap();
    wait_for(LONG, "n1's replica joined n0's", || other.len() == 1).await;
    wait_for(
        LONG,
        "the join and the replicas' sizes are recorded",
        || {
            let text = metrics.render();
            value(&text, r#"ensemble_table_joins_total{table="carts"}"#) == Some(1.0)
                && value(&text, r#"ensemble_table_join_seconds_count{table="carts"}"#) == Some(1.0)
                && value(&text, r#"ensemble_table_records{table="carts"}"#) == Some(1.0)
                && value(&text, r#"ensemble_table_bytes{table="carts"}"#).is_some_and(|b| b > 0.0)
        },
    )
    .await;
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"ensemble_table_conflicts_resolved_total{table="carts"}"#
        ),
        Some(0.0)
    );

    // The tracker: its rows by status.
    nodes[0].tracker().await.unwrap();
    wait_for(LONG, "the tracker's rows are counted", || {
        value(
            &metrics.render(),
            r#"ensemble_tracker_nodes{status="online"}"#,
        ) == Some(2.0)
    })
    .await;

    // Discovery: its phase, its nodes and its get_nodes calls.
    let list: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
    let discovery = support::start(&nodes[0], StaticBackend::new(list));
    assert!(discovery.wait_for_ready(LONG).await);
    let text = metrics.render();
    assert_eq!(
        value(&text, r#"ensemble_discovery_phase{phase="initial"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "ensemble_discovery_discovered_nodes"),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "ensemble_discovery_unavailable_nodes"),
        Some(0.0)
    );
    assert!(value(&text, r#"ensemble_discovery_get_nodes_total{result="ok"}"#).unwrap() >= 1.0);
    assert_eq!(
        value(
            &text,
            r#"ensemble_discovery_get_nodes_total{result="error"}"#
        ),
        Some(0.0)
    );
    drop(discovery);

    // A member that stops without leaving is suspected, then declared down: the time between
    // is observed.
    nodes[1].shutdown().await;
    wait_for(Duration::from_secs(60), "n0 sees n1 down", || {
        status(&nodes[0], "n1") == Some(ensemble::Status::Down)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = metrics.render();
    assert_eq!(
        value(&text, "ensemble_detection_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"ensemble_members{status="down"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"ensemble_member_transitions_total{kind="down"}"#),
        Some(1.0)
    );
}
