//! Discovery over real TCP with the `static` and `file` backends.

mod common;
#[path = "support/discovery.rs"]
mod support;

use std::time::Duration;

use ensemble::discovery::{Discovery, FileBackend, RetryKind, StaticBackend};
use ensemble::Status;

use common::{start, status, wait_for};

const LIMIT: Duration = Duration::from_secs(10);

/// Rewrites the discovery file as a rename over it, so that a poll never reads it half-written
/// (truncated and still empty: a successful `get_nodes` of no nodes, which made a test see the
/// node ready before the write landed).
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_list_joins_every_node_and_becomes_ready() {
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let c = start("c", &[]).await;
    let list: Vec<String> = [&a, &b, &c].iter().map(|n| n.addr().to_string()).collect();
    let da = support::start(&a, StaticBackend::new(list.clone()));
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(info.connected_nodes, vec!["b".to_owned(), "c".to_owned()]);
    assert_eq!(info.discovered_nodes.len(), 3);
    assert!(info.unavailable_nodes.is_empty(), "{info:?}");
    assert_eq!(info.backend, "static");
    // Filled from b's incarnation once its `up` event arrived.
    wait_for(LIMIT, "b's start time", || {
        da.system_info()
            .node_start_timestamps
            .get("b")
            .is_some_and(|t| *t >= info.start_time - 60_000 && *t <= info.start_time)
    })
    .await;
    wait_for(LIMIT, "b and c see each other", || {
        status(&b, "c") == Some(Status::Alive)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_file_adds_a_node_and_bad_entries_are_survived() {
    let dir = tempdir("file");
    let path = dir.join("nodes");
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let c = start("c", &[]).await;
    std::fs::write(
        &path,
        format!(
            "# the cluster\n{} {}\nno-such-host.invalid:7946\nnot-an-address\n",
            a.addr(),
            b.addr()
        ),
    )
    .unwrap();
    let da = support::start(&a, FileBackend::new(&path));
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    assert_eq!(info.unavailable_nodes.len(), 2, "{info:?}");
    assert!(info.unavailable_nodes.contains_key("not-an-address"));
    assert_eq!(status(&a, "c"), None);
    // The next poll reads the new line and joins c.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{}\n", c.addr()));
    replace_file(&path, &text);
    wait_for(LIMIT, "a sees c", || status(&a, "c") == Some(Status::Alive)).await;
    wait_for(LIMIT, "c is connected in system_info", || {
        da.system_info().connected_nodes.contains(&"c".to_owned())
    })
    .await;
    assert!(da.wait_for_ready(LIMIT).await);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_nodes_failures_are_retried_after_error() {
    let dir = tempdir("missing");
    let path = dir.join("nodes");
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let da = support::start(&a, FileBackend::new(&path));
    wait_for(LIMIT, "two failed calls", || {
        da.system_info().get_nodes_count >= 2
    })
    .await;
    let info = da.system_info();
    assert_eq!(info.last_get_nodes_retry_kind, Some(RetryKind::AfterError));
    let err = info.last_get_nodes_result.unwrap();
    assert!(err.contains("cannot read the discovery file"), "{err}");
    assert!(!da.wait_for_ready(Duration::from_millis(300)).await);
    replace_file(&path, &b.addr().to_string());
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(info.last_get_nodes_result.as_deref(), Some("ok"));
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_answers_fails_its_probe_then_ready() {
    let a = start("a", &[]).await;
    // Accepts connections (the backlog does) but never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let da = support::start(
        &a,
        StaticBackend::new([silent.local_addr().unwrap().to_string()]),
    );
    assert!(!da.wait_for_ready(Duration::from_millis(300)).await);
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    let reason = &info.unavailable_nodes[&silent.local_addr().unwrap().to_string()];
    assert!(reason.contains("did not complete a join"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_listed_at_once_and_joined_with_each_node() {
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let da = support::start(&a, StaticBackend::new([b.addr().to_string()]));
    da.add_table("sessions").await;
    da.add_table("locks").await;
    assert_eq!(da.tables(), vec!["locks".to_owned(), "sessions".to_owned()]);
    assert!(da.wait_for_ready(LIMIT).await);
    let info = da.system_info();
    assert_eq!(info.join_results["b"]["sessions"], "ok");
    assert_eq!(info.join_results["b"]["locks"], "ok");
    da.delete_table("locks").await;
    assert_eq!(da.tables(), vec!["sessions".to_owned()]);
    assert!(da.wait_for_get_nodes(LIMIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_startup_ends_the_startup_phase() {
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let mut options = support::fast();
    options.schedule.startup_phase = Duration::from_millis(300);
    let db = Discovery::start(
        b.clone(),
        StaticBackend::new([a.addr().to_string()]),
        options,
    );
    wait_for(LIMIT, "b past startup", || {
        db.system_info().phase == ensemble::discovery::Phase::Regular
    })
    .await;
    // a's startup phase is a minute long, but b's tag ends it.
    let da = support::start(&a, StaticBackend::new([b.addr().to_string()]));
    wait_for(LIMIT, "a past startup", || {
        da.system_info().phase == ensemble::discovery::Phase::Regular
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_makes_it_unavailable_and_brings_get_nodes_forward() {
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let mut options = support::fast();
    options.schedule.regular = Duration::from_secs(60);
    options.schedule.after_nodedown = Duration::from_millis(400);
    options.schedule.startup_phase = Duration::from_millis(100);
    let da = Discovery::start(
        a.clone(),
        StaticBackend::new([b.addr().to_string()]),
        options,
    );
    assert!(da.wait_for_ready(LIMIT).await);
    wait_for(LIMIT, "regular retry", || {
        da.system_info().last_get_nodes_retry_kind == Some(RetryKind::Regular)
    })
    .await;
    let count = da.system_info().get_nodes_count;
    b.shutdown().await;
    wait_for(LIMIT, "b unavailable", || {
        da.system_info()
            .unavailable_nodes
            .get(&b.addr().to_string())
            .is_some_and(|r| r.contains("went down"))
    })
    .await;
    assert!(da.system_info().nodedown_timestamps.contains_key("b"));
    // The next get_nodes comes after_nodedown (400 ms), not regular (60 s).
    wait_for(LIMIT, "an early get_nodes", || {
        da.system_info().get_nodes_count > count
    })
    .await;
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ensemble-discovery-{what}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A backend whose every `get_nodes` waits for a permit, so a test decides when each ends.
struct Gated {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl ensemble::discovery::Backend for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }
    async fn get_nodes(
        &self,
    ) -> Result<Vec<ensemble::discovery::DiscoveredNode>, ensemble::discovery::DiscoveryError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.permits.acquire().await.unwrap().forget();
        Ok(vec![])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_get_nodes_waits_for_the_call_queued_behind_the_running_one() {
    use std::sync::atomic::Ordering::SeqCst;
    let a = start("a", &[]).await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut options = support::fast();
    options.get_nodes_timeout = Duration::from_secs(60);
    let da = Discovery::start(
        a.clone(),
        Gated {
            calls: calls.clone(),
            permits: permits.clone(),
        },
        options,
    );
    wait_for(LIMIT, "the first get_nodes runs", || {
        calls.load(SeqCst) == 1
    })
    .await;
    assert!(da.system_info().get_nodes_running);
    // Asked for while one runs: queued.
    da.get_nodes_now().await;
    assert!(da.system_info().should_retry_get_nodes);
    let waiter = {
        let da = da.clone();
        tokio::spawn(async move { da.wait_for_get_nodes(Duration::from_secs(60)).await })
    };
    permits.add_permits(1);
    wait_for(LIMIT, "the queued get_nodes runs at once", || {
        calls.load(SeqCst) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "returned before the queued call ended"
    );
    assert!(!da.system_info().should_retry_get_nodes);
    permits.add_permits(1);
    let done = tokio::time::timeout(LIMIT, waiter).await;
    assert!(done.expect("wait_for_get_nodes returns").unwrap());
    assert_eq!(da.system_info().get_nodes_count, 2);
    // Nothing runs now: it returns at once.
    assert!(da.wait_for_get_nodes(Duration::ZERO).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_table_join_is_tried_again_after_error() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let attempts = std::sync::Arc::new(AtomicUsize::new(0));
    let mut options = support::fast();
    let counted = attempts.clone();
    // The first join fails, the next ones succeed.
    options.table_joiner = Some(std::sync::Arc::new(move |_node, _table| {
        let n = counted.fetch_add(1, SeqCst);
        Box::pin(async move {
            match n {
                0 => Err("the peer's replica is not there yet".to_owned()),
                _ => Ok(()),
            }
        })
    }));
    options.schedule.after_error = Duration::from_millis(500);
    let da = Discovery::start(
        a.clone(),
        StaticBackend::new([b.addr().to_string()]),
        options,
    );
    da.add_table("sessions").await;
    // A failed join is a result: ready, with the error and a retry pending.
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(
        info.join_results["b"]["sessions"],
        "the peer's replica is not there yet"
    );
    assert!(info.should_retry_join, "{info:?}");
    wait_for(LIMIT, "the join tried again and ok", || {
        da.system_info().join_results["b"]["sessions"] == "ok"
    })
    .await;
    assert!(!da.system_info().should_retry_join);
    assert_eq!(attempts.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_each_tracked_table_its_replica_and_joins() {
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let ta = a
        .table("sessions", ensemble::TableOptions::<String, String>::set())
        .await
        .unwrap();
    b.table("sessions", ensemble::TableOptions::<String, String>::set())
        .await
        .unwrap();
    ta.insert("k".into(), "v".into()).await.unwrap();
    let mut options = support::fast();
    options.table_joiner = Some(a.table_joiner(Duration::from_secs(5)));
    let da = Discovery::start(
        a.clone(),
        StaticBackend::new([b.addr().to_string()]),
        options,
    );
    da.add_table("sessions").await;
    da.add_table("not-hosted").await;
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.info().await;
    assert_eq!(info.len(), 2, "{info:?}");
    let hosted = info.iter().find(|i| i.table == "sessions").unwrap();
    assert_eq!(hosted.size, Some(1), "{hosted:?}");
    assert!(hosted.memory.is_some_and(|m| m > 0), "{hosted:?}");
    assert_eq!(
        hosted.nodes,
        vec!["a".to_owned(), "b".to_owned()],
        "{info:?}"
    );
    assert_eq!(hosted.join_results["b"], "ok");
    let other = info.iter().find(|i| i.table == "not-hosted").unwrap();
    assert_eq!((other.size, other.memory), (None, None), "{other:?}");
    assert!(other.nodes.is_empty());
    assert_ne!(other.join_results["b"], "ok", "{other:?}");
}
