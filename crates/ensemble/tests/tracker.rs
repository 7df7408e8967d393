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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_is_the_lowest_named_node_hosting_the_tracker() {
    // "h-a" is the lowest-named member but, like a library node, never starts the tracker.
    let a = start("h-a", &[]).await;
    let b = start("h-b", &[a.addr()]).await;
    let c = start("h-c", &[a.addr()]).await;
    let names = names(&[a.clone(), b.clone(), c.clone()]);
    wait_for(Duration::from_secs(15), "full membership", || {
        all_see(
            &[a.clone(), b.clone(), c.clone()],
            &names,
            ensemble::Status::Alive,
        )
    })
    .await;
    let (tb, tc) = (b.tracker().await.unwrap(), c.tracker().await.unwrap());
    let is =
        |t: &Tracker, n: &str, s: NodeStatus| t.fetch(n).unwrap().is_some_and(|r| r.status == s);
    wait_for(Duration::from_secs(15), "b and c online in both", || {
        [&tb, &tc]
            .iter()
            .all(|t| is(t, "h-b", NodeStatus::Online) && is(t, "h-c", NodeStatus::Online))
    })
    .await;
    // c leaves: b, the lowest-named host, marks it offline (a never would).
    c.shutdown().await;
    wait_for(Duration::from_secs(15), "c offline in b's tracker", || {
        is(&tb, "h-c", NodeStatus::Offline)
    })
    .await;
    // a is a member all the same: b writes its row too.
    assert!(is(&tb, "h-a", NodeStatus::Online), "{:?}", statuses(&tb));
    a.shutdown().await;
    b.shutdown().await;
}

async fn next_event(
    events: &mut (impl futures::Stream<Item = ensemble::TrackerEvent> + Unpin),
    what: &str,
    want: impl Fn(&ensemble::TrackerEvent) -> bool,
) -> ensemble::TrackerEvent {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(15), events.next())
            .await
            .unwrap_or_else(|_| panic!("no event: {what}"))
            .expect("the stream goes on");
        if want(&e) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_carry_the_operation_the_new_row_and_when_detailed_the_old_rows() {
    use ensemble::{Detail, TrackerOp, TRACKER_TABLE};
    let a = start("sub-a", &[]).await;
    let b = start("sub-b", &[a.addr()]).await;
    let ta = a.tracker().await.unwrap();
    b.tracker().await.unwrap();
    wait_for(Duration::from_secs(15), "b online in a's tracker", || {
        statuses(&ta) == online(&["sub-a", "sub-b"])
    })
    .await;
    let mut simple = ta.subscribe(Detail::Simple);
    let mut detailed = ta.subscribe(Detail::Detailed);
    b.shutdown().await;
    let offline = |e: &ensemble::TrackerEvent| {
        e.node == "sub-b"
            && e.new
                .as_ref()
                .is_some_and(|r| r.status == NodeStatus::Offline)
    };
    let e = next_event(&mut detailed, "b offline, detailed", offline).await;
    assert_eq!(e.op, TrackerOp::Write);
    assert_eq!(e.module, TRACKER_TABLE);
    assert_eq!(e.new.as_ref().unwrap().module, TRACKER_TABLE);
    assert_eq!(e.old.len(), 1, "{e:?}");
    assert_eq!(e.old[0].status, NodeStatus::Online);
    assert_eq!(e.old[0].node, "sub-b");
    let e = next_event(&mut simple, "b offline, simple", offline).await;
    assert_eq!(e.op, TrackerOp::Write);
    assert!(e.old.is_empty(), "simple events carry no old rows: {e:?}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_and_add_node_put_nodes_in_the_tracker() {
    let a = start("add-a", &[]).await;
    let b = start("add-b", &[]).await;
    let ta = a.tracker().await.unwrap();
    assert_eq!(ta.get_mode(), Mode::Standalone);
    // A node outside membership: online, and it stays so (nobody's member list has it).
    ta.new_node("outside").await.unwrap();
    let row = ta.fetch("outside").unwrap().expect("a row");
    assert_eq!((row.status, row.incarnation), (NodeStatus::Online, 0));
    assert!(ta.new_node("bad name").await.is_err());
    // add_node joins the node at the address and marks it online.
    assert_eq!(ta.add_node(b.addr()).await.unwrap(), "add-b");
    assert_eq!(
        ta.fetch("add-b").unwrap().map(|r| r.status),
        Some(NodeStatus::Online)
    );
    wait_for(Duration::from_secs(15), "a clustered", || {
        ta.get_mode() == Mode::Clustered
    })
    .await;
    // Two reconciles later the outside row is still there, online.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        ta.fetch("outside").unwrap().map(|r| r.status),
        Some(NodeStatus::Online)
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_exists_waits_for_the_tracker_table() {
    use ensemble::{UNTIL_EXISTS_INTERVAL, UNTIL_EXISTS_TIMEOUT};
    assert_eq!(UNTIL_EXISTS_TIMEOUT, Duration::from_millis(1_000));
    assert_eq!(UNTIL_EXISTS_INTERVAL, Duration::from_millis(15));
    let a = start("exists-a", &[]).await;
    assert!(!Tracker::table_exists(&a).await);
    assert!(!Tracker::until_exists(&a, Duration::from_millis(100), UNTIL_EXISTS_INTERVAL).await);
    let later = a.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        later.tracker().await.unwrap();
    });
    assert!(Tracker::until_exists(&a, Duration::from_secs(15), UNTIL_EXISTS_INTERVAL).await);
    assert!(Tracker::table_exists(&a).await);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_point_is_called_with_each_mode_the_tracker_enters() {
    let a = start("entry-a", &[]).await;
    let ta = a.tracker().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let entry = ta.entry_point(move |mode| {
        let _ = tx.send(mode);
    });
    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Mode>) -> Mode {
        tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a mode")
            .expect("the callback runs on")
    }
    assert_eq!(next(&mut rx).await, Mode::Standalone);
    let b = start("entry-b", &[a.addr()]).await;
    assert_eq!(next(&mut rx).await, Mode::Clustered);
    b.shutdown().await;
    assert_eq!(next(&mut rx).await, Mode::Standalone);
    entry.cancel();
    a.shutdown().await;
}
