//! PostgreSQL discovery against a throwaway PostgreSQL started by the test, with and
//! without TLS.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/discovery.rs"]
mod support;

use std::time::Duration;

use ensemble::discovery::{Backend, Discovery, PostgresBackend, PostgresOptions, RetryKind};
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

        // This server has no TLS: `prefer` (the default, above) went on in plain TCP,
        // `require` does not.
        let err = once(&format!("{url}?sslmode=require"), &nodes[0]).await;
        assert!(err.contains("server does not support TLS"), "{err}");
    });
}

/// The test's password for the TLS instance: it must never show in an error or a log line.
const PASSWORD: &str = "pw-never-shown-5d1e";

#[test]
fn discovery_over_tls_encrypts_and_checks_the_server_as_sslmode_asks() {
    let Some(pg) = pg::Pg::start_tls(PASSWORD) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = pg.ca_file();
        let expiry = Duration::from_secs(60);
        // a asks only for encryption, b checks the certificate and its name (127.0.0.1), and
        // binds its SCRAM authentication to the TLS session (channel binding).
        let require = pg.url_to("127.0.0.1", "sslmode=require");
        let verify_full = pg.url_to(
            "127.0.0.1",
            &format!(
                "sslmode=verify-full&sslrootcert={}&channel_binding=require",
                ca.display()
            ),
        );
        let a = start("a", &[]).await;
        let b = start("b", &[]).await;
        let da = support::start(&a, backend(&require, &a, expiry));
        let db = support::start(&b, backend(&verify_full, &b, expiry));
        wait_for(LIMIT, "a and b connected", || {
            da.system_info().connected_nodes.len() == 1
                && db.system_info().connected_nodes.len() == 1
        })
        .await;
        assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
        assert!(db.wait_for_ready(LIMIT).await, "{:?}", db.system_info());

        // The server's view: both discovery sessions are encrypted.
        let sessions = discovery_sessions(&pg).await;
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        for (ssl, version) in &sessions {
            assert!(ssl, "a discovery session in plain TCP: {sessions:?}");
            assert!(version.starts_with("TLSv1."), "{sessions:?}");
        }

        // verify-ca checks the chain only: `localhost` is not in the certificate.
        let url = pg.url_to(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        );
        let mut check = PostgresOptions::new(&url, "checks", "x", a.addr());
        check.expiry = expiry;
        let nodes = PostgresBackend::new(check).unwrap().get_nodes().await;
        assert!(nodes.is_ok(), "{nodes:?}");
        // verify-full checks the name too.
        let url = pg.url_to(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        );
        let err = once(&url, &a).await;
        assert!(err.contains("not valid for name"), "{err}");

        // Another CA: the certificate is refused, and get_nodes is retried (after_error).
        let other_ca = pg.dir().join("other-ca.crt");
        std::fs::write(&other_ca, pg::new_ca("Another CA").pem()).unwrap();
        let wrong = pg.url_to(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        );
        let c = start("c", &[]).await;
        let dc = support::start(&c, backend(&wrong, &c, expiry));
        wait_for(LIMIT, "c's get_nodes failed twice", || {
            dc.system_info().get_nodes_count >= 2
        })
        .await;
        let info = dc.system_info();
        assert_eq!(info.last_get_nodes_retry_kind, Some(RetryKind::AfterError));
        let err = info.last_get_nodes_result.unwrap();
        assert!(err.contains("invalid peer certificate"), "{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");
        assert!(err.contains("does not end at a trusted root"), "{err}");
        assert!(err.contains("sslmode=verify-full"), "{err}");
        assert!(
            info.connected_nodes.is_empty(),
            "{:?}",
            info.connected_nodes
        );

        // No TLS: this server takes TCP connections over TLS only (hostssl).
        let err = once(&pg.url_to("127.0.0.1", "sslmode=disable"), &a).await;
        assert!(err.contains("no pg_hba.conf entry"), "{err}");
        assert!(err.contains("no encryption"), "{err}");
        assert!(err.contains("sslmode=disable"), "{err}");

        // The password shows nowhere: not in errors, not in the options' Debug.
        let options = PostgresOptions::new(&verify_full, "test", "b", b.addr());
        assert!(!format!("{options:?}").contains(PASSWORD));
        assert!(format!("{options:?}").contains("postgres:***@"));
        assert_eq!(rows_over(&pg).await, vec!["a".to_owned(), "b".to_owned()]);
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

/// One `get_nodes` through a backend for `url`; its error.
async fn once(url: &str, node: &Node) -> String {
    let backend = PostgresBackend::new(PostgresOptions::new(url, "checks", "x", node.addr()))
        .expect("the URL parses");
    let err = backend
        .get_nodes()
        .await
        .expect_err("get_nodes fails")
        .to_string();
    assert!(!err.contains(PASSWORD), "the password in an error: {err}");
    err
}

/// (ssl, TLS version) of each discovery session, as the server sees them (through the Unix
/// socket).
async fn discovery_sessions(pg: &pg::Pg) -> Vec<(bool, String)> {
    let (client, conn) = tokio_postgres::connect(&pg.socket_conn(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&PostgresBackend::APPLICATION_NAME],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The node names registered in cluster `test`, read through the Unix socket.
async fn rows_over(pg: &pg::Pg) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(&pg.socket_conn(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT node_name FROM discovery_nodes WHERE cluster_name = 'test' \
             ORDER BY node_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn pg_stop(pg: &pg::Pg) {
    // pg_ctl blocks: not on a runtime thread.
    tokio::task::block_in_place(|| pg.stop_server());
}

async fn pg_start(pg: &pg::Pg) {
    tokio::task::block_in_place(|| pg.start_server());
}
