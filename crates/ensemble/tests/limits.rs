//! What the API refuses before anything is sent, over real TCP on 127.0.0.1: messages, user
//! events and table writes that cannot fit in one frame (no peer ever gets a frame it must
//! refuse, so no connection closes), and table names that are not the caller's to use.

use std::time::Duration;

use ensemble::proto::broadcast::BroadcastError;
use ensemble::{Error, Node, Status, TableOptions, DEFAULT_MAX_FRAME};

mod common;
use common::*;

/// Connections closed at `n` so far (every reason counted).
async fn closed(n: &Node) -> u64 {
    n.broadcast_status(None).await.unwrap().connections_closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_fit_in_a_frame_is_refused_at_once_and_closes_no_connection() {
    let nodes = cluster(2).await;
    let mut jobs = nodes[1].register("jobs").await.unwrap();
    let before = (closed(&nodes[0]).await, closed(&nodes[1]).await);

    // Named messages: refused at once, acknowledged or not (no 5 s wait for an ack).
    let huge = vec![b'x'; 1_900_000];
    let err = nodes[0]
        .cast_message("n1", "jobs", huge.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { max, .. } if max == DEFAULT_MAX_FRAME),
        "{err}"
    );
    let started = std::time::Instant::now();
    let err = nodes[0]
        .forward_message(
            "n1",
            "jobs",
            vec![b'x'; DEFAULT_MAX_FRAME],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Just under the limit (with the names and the longest id around it): delivered.
    let fits = vec![b'y'; DEFAULT_MAX_FRAME - 64];
    nodes[0]
        .forward_message("n1", "jobs", fits.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(jobs.recv().await.unwrap().payload.len(), fits.len());

    // A user event over the broadcast limit.
    let err = nodes[0]
        .send_event("deploy", vec![b'z'; 100 * 1024])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Broadcast(BroadcastError::TooLarge { .. })),
        "{err}"
    );

    // A table write of many records, each fine, together over a frame.
    let t0 = nodes[0]
        .table::<String, String>("sessions", TableOptions::set())
        .await
        .unwrap();
    let t1 = nodes[1]
        .table::<String, String>("sessions", TableOptions::set())
        .await
        .unwrap();
    wait_for_async(|| async { t0.info().await.is_ok_and(|i| i.members.len() == 2) }).await;
    let records: Vec<(String, String)> = (0..8)
        .map(|i| (format!("k{i}"), "v".repeat(200 * 1024)))
        .collect();
    let err = t0.insert_many(&records).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let err = t0.insert_many_async(&records).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(t1.snapshot().unwrap().len(), 0, "nothing was written");

    // Writes that are fine one by one but pile up behind a full window are coalesced into
    // messages that still fit in a frame.
    let mut ids = Vec::new();
    for i in 0..120 {
        let value = "w".repeat(200 * 1024);
        ids.push(t0.insert_async(format!("c{i}"), value).await.unwrap());
    }
    for r in t0.wait_responses(ids, Duration::from_secs(60)).await {
        r.unwrap();
    }
    assert_eq!(t1.snapshot().unwrap().len(), 120);

    // No connection closed, and both are still members of each other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (closed(&nodes[0]).await, closed(&nodes[1]).await),
        before,
        "a connection closed"
    );
    assert_eq!(status(&nodes[0], "n1"), Some(Status::Alive));
    assert_eq!(status(&nodes[1], "n0"), Some(Status::Alive));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensembles_own_tables_and_bad_names_are_refused() {
    let nodes = cluster(1).await;
    let n = &nodes[0];
    let err = n
        .table::<String, String>("ensemble.tracker", TableOptions::set())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReservedName(t) if t == "ensemble.tracker"),
        "{err}"
    );
    let err = n
        .table::<String, String>("ensemble.mine", TableOptions::set())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReservedName(_)), "{err}");
    for bad in ["", "line\nbreak", "nul\0", &"x".repeat(129)] {
        let err = n
            .table::<String, String>(bad, TableOptions::set())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad:?}: {err}");
    }
    assert!(ensemble::check_table_name("ensemble.tracker").is_err());
    assert!(ensemble::check_table_name("sessions").is_ok());
    // The tracker, which uses `ensemble.tracker`, works.
    let tracker = n.tracker().await.unwrap();
    wait_for_async(|| async { tracker.fetch_all().is_ok_and(|rows| rows.len() == 1) }).await;
    assert!(n
        .tables()
        .await
        .unwrap()
        .contains(&"ensemble.tracker".to_string()));
}

async fn wait_for_async<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
