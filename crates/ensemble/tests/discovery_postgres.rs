//! PostgreSQL discovery against a throwaway PostgreSQL started by the test.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/discovery.rs"]
mod support;

use std::time::Duration;

use ensemble::discovery::{Discovery, PostgresBackend, PostgresOptions, RetryKind};
use ensemble::{Node, Status};

use common::{start, status, wait_for};

const LIMIT: Duration = Duration::from_secs(15);

fn backend(url: &str, node: &Node, expiry: Duration) -> PostgresBackend {
    let mut o = PostgresOptions::new(url, "test", node.name(), node.addr());
    o.expiry = expiry;
    PostgresBackend::new(o).unwrap()
}

async fn rows(url: &str) -> Vec<(String, i32)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT node_name, node_num FROM discovery_nodes WHERE cluster_name = 'test' \
             ORDER BY node_num",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn nodes_register_find_each_other_expire_and_survive_the_database_going_away() {
    let Some(pg) = pg::Pg::start() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = pg.url();
        let expiry = Duration::from_secs(2);
        let mut nodes = Vec::new();
        let mut discoveries = Vec::new();
        for name in ["a", "b", "c"] {
            let n = start(name, &[]).await;
            discoveries.push(support::start(&n, backend(&url, &n, expiry)));
            nodes.push(n);
        }
        wait_for(LIMIT, "every node connected to the two others", || {
            discoveries
                .iter()
                .all(|d| d.system_info().connected_nodes.len() == 2)
        })
        .await;
        for d in &discoveries {
            assert!(d.wait_for_ready(LIMIT).await, "{:?}", d.system_info());
        }
        let mut nums: Vec<u32> = discoveries.iter().map(|d| d.node_num().unwrap()).collect();
        nums.sort();
        assert_eq!(nums, vec![1, 2, 3]);
        assert_eq!(rows(&url).await.len(), 3);

        // c stops: its row is no longer refreshed and expires.
        let c_num = discoveries[2].node_num().unwrap();
        let c = nodes.pop().unwrap();
        drop(discoveries.pop());
        c.shutdown().await;
        drop(c);
        let mut gone = false;
        for _ in 0..100 {
            if rows(&url).await.iter().all(|(n, _)| n != "c") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "c's row never expired: {:?}", rows(&url).await);
        wait_for(LIMIT, "a forgets c's address", || {
            discoveries[0].system_info().discovered_nodes.len() == 2
        })
        .await;

        // A new node takes the lowest free number: c's.
        let d = start("d", &[]).await;
        let dd = support::start(&d, backend(&url, &d, expiry));
        wait_for(LIMIT, "d numbered", || dd.node_num().is_some()).await;
        assert_eq!(dd.node_num(), Some(c_num));
        wait_for(LIMIT, "a sees d", || {
            status(&nodes[0], "d") == Some(Status::Alive)
        })
        .await;

        // The database goes away: get_nodes fails and is retried; the nodes run on.
        pg_stop(&pg).await;
        wait_for(LIMIT, "a's get_nodes fails", || {
            let i = discoveries[0].system_info();
            i.last_get_nodes_retry_kind == Some(RetryKind::AfterError)
                && i.last_get_nodes_result
                    .as_deref()
                    .is_some_and(|r| r.contains("PostgreSQL"))
        })
        .await;
        assert!(
            !discoveries[0]
                .wait_for_ready(Duration::from_millis(200))
                .await
        );
        assert_eq!(status(&nodes[0], "b"), Some(Status::Alive));
        pg_start(&pg).await;
        for d in &discoveries {
            assert!(d.wait_for_ready(LIMIT).await, "{:?}", d.system_info());
        }
        assert_eq!(rows(&url).await.len(), 3);
    });
}

#[test]
fn an_unreachable_database_is_an_after_error_retry() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = start("a", &[]).await;
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg::free_port());
        let da: Discovery = support::start(&a, backend(&url, &a, Duration::from_secs(60)));
        wait_for(LIMIT, "two failed calls", || {
            da.system_info().get_nodes_count >= 2
        })
        .await;
        let info = da.system_info();
        assert_eq!(info.last_get_nodes_retry_kind, Some(RetryKind::AfterError));
        assert!(info
            .last_get_nodes_result
            .unwrap()
            .contains("--postgres-url"));
        assert!(
            PostgresBackend::new(PostgresOptions::new("not a url", "test", "a", a.addr())).is_err()
        );
    });
}

async fn pg_stop(pg: &pg::Pg) {
    // pg_ctl blocks: not on a runtime thread.
    tokio::task::block_in_place(|| pg.stop_server());
}

async fn pg_start(pg: &pg::Pg) {
    tokio::task::block_in_place(|| pg.start_server());
}
