//! The node tracker between nodes in one process, over real TCP on 127.0.0.1.

use std::time::Duration;

use ensemble::{Mode, NodeStatus, NodeUpdate, Tracker};
use futures::StreamExt;

mod common;
use common::*;

fn statuses(t: &Tracker) -> Vec<(String, NodeStatus)> {
    t.fetch_all()
        .unwrap()
        .into_iter()
        .map(|r| (r.node, r.status))
        .collect()
}

fn online(names: &[&str]) -> Vec<(String, NodeStatus)> {
    names
        .iter()
        .map(|n| (n.to_string(), NodeStatus::Online))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_flip_offline_and_back_and_alerts_never_report_self() {
    let nodes = cluster(3).await;
    let mut trackers = Vec::new();
    for n in &nodes {
        trackers.push(n.tracker().await.unwrap());
    }
    wait_for(
        Duration::from_secs(10),
        "every tracker has 3 online rows",
        || {
            trackers
                .iter()
                .all(|t| statuses(t) == online(&["n0", "n1", "n2"]))
        },
    )
    .await;
    assert_eq!(trackers[0].get_mode(), Mode::Clustered);
    let mut alerts = trackers[0].alert_me();
    let since = trackers[0].fetch("n2").unwrap().unwrap().last_change_ms;

    // Cut n2 off: it goes offline in the others' trackers, and its row is kept.
    let cut = [
        nodes[0].inject_partition(["n2".to_string()]).await.unwrap(),
        nodes[1].inject_partition(["n2".to_string()]).await.unwrap(),
    ];
    let back = nodes[2]
        .inject_partition(["n0".to_string(), "n1".to_string()])
        .await
        .unwrap();
    wait_for(Duration::from_secs(15), "n2 offline in n0 and n1", || {
        trackers[..2].iter().all(|t| {
            t.fetch("n2")
                .unwrap()
                .is_some_and(|r| r.status == NodeStatus::Offline)
        })
    })
    .await;
    let row = trackers[1].fetch("n2").unwrap().unwrap();
    assert!(row.last_change_ms >= since);
    assert_eq!(
        trackers[0]
            .select(|r| r.status == NodeStatus::Offline)
            .unwrap()
            .len(),
        1
    );
    // n2, alone, sees itself standalone.
    wait_for(Duration::from_secs(15), "n2 standalone", || {
        trackers[2].get_mode() == Mode::Standalone
    })
    .await;

    for (n, r) in nodes[..2].iter().zip(cut) {
        n.resolve_partition(r).await.unwrap();
    }
    nodes[2].resolve_partition(back).await.unwrap();
    wait_for(
        Duration::from_secs(20),
        "n2 online again everywhere",
        || {
            trackers
                .iter()
                .all(|t| statuses(t) == online(&["n0", "n1", "n2"]))
        },
    )
    .await;

    // n0's alerts: n2 offline, then online; never n0 itself.
    let mut seen = Vec::new();
    while !seen.contains(&NodeUpdate {
        node: "n2".into(),
        status: NodeStatus::Online,
    }) {
        let u = tokio::time::timeout(Duration::from_secs(5), alerts.next())
            .await
            .expect("an alert")
            .expect("the stream goes on");
        seen.push(u);
    }
    assert!(seen.iter().all(|u| u.node != "n0"), "{seen:?}");
    let n2: Vec<NodeStatus> = seen
        .iter()
        .filter(|u| u.node == "n2")
        .map(|u| u.status)
        .collect();
    assert_eq!(n2[0], NodeStatus::Offline, "{seen:?}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_that_started_alone_merge_their_trackers() {
    let a = start("alone-a", &[]).await;
    let b = start("alone-b", &[]).await;
    let (ta, tb) = (a.tracker().await.unwrap(), b.tracker().await.unwrap());
    assert_eq!(ta.get_mode(), Mode::Standalone);
    assert_eq!(statuses(&tb), online(&["alone-b"]));
    b.join(a.addr()).await.unwrap();
    wait_for(Duration::from_secs(15), "one tracker with both", || {
        [&ta, &tb]
            .iter()
            .all(|t| statuses(t) == online(&["alone-a", "alone-b"]))
    })
    .await;
    // The mode follows membership, which a loaded machine may briefly
    // see as suspect; it must settle on Clustered.
    wait_for(Duration::from_secs(15), "both clustered", || {
        [&ta, &tb].iter().all(|t| t.get_mode() == Mode::Clustered)
    })
    .await;
    // A second handle shares the same table and task.
    let again = a.tracker().await.unwrap();
    assert_eq!(statuses(&again), statuses(&ta));
    a.shutdown().await;
    b.shutdown().await;
}
