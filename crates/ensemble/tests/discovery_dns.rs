//! DNS discovery against a real DNS server on 127.0.0.1.

mod common;
#[path = "support/dns.rs"]
mod dns;
#[path = "support/discovery.rs"]
mod support;

use std::net::IpAddr;
use std::time::Duration;

use ensemble::discovery::{DnsBackend, RetryKind};
use ensemble::Status;

use common::{start, status, wait_for};
use dns::DnsServer;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_find_nodes_and_a_new_record_makes_a_node_join() {
    let server = DnsServer::start().await;
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let c = start("c", &[]).await;
    server
        .add_ip("host.cluster.test.", "127.0.0.1".parse().unwrap())
        .await;
    let srv = "_ensemble._tcp.cluster.test.";
    for n in [&a, &b] {
        server
            .add_srv(srv, "host.cluster.test.", n.addr().port())
            .await;
    }
    let backend = DnsBackend::new(srv, 0, Some(server.addr)).unwrap();
    let da = support::start(&a, backend);
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    assert_eq!(info.discovered_nodes.len(), 2, "{info:?}");
    assert_eq!(info.backend, "dns");
    // A new record: c joins at the next poll.
    server
        .add_srv(srv, "host.cluster.test.", c.addr().port())
        .await;
    wait_for(LIMIT, "a sees c", || status(&a, "c") == Some(Status::Alive)).await;
    wait_for(LIMIT, "c connected", || {
        da.system_info().connected_nodes == vec!["b".to_owned(), "c".to_owned()]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_records_are_nodes_on_the_given_port() {
    let server = DnsServer::start().await;
    let a = start("a", &[]).await;
    let b = start("b", &[]).await;
    let name = "nodes.cluster.test.";
    server.add_ip(name, "127.0.0.1".parse().unwrap()).await;
    // Nothing listens on [::1] at b's port: discovered, then unavailable.
    server.add_ip(name, "::1".parse::<IpAddr>().unwrap()).await;
    let backend = DnsBackend::new(name, b.addr().port(), Some(server.addr)).unwrap();
    let da = support::start(&a, backend);
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());
    let info = da.system_info();
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    let v6 = format!("[::1]:{}", b.addr().port());
    assert!(info.discovered_nodes.contains(&v6), "{info:?}");
    assert!(info.unavailable_nodes.contains_key(&v6), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_a_dead_server_are_after_error_retries() {
    let server = DnsServer::start().await;
    let a = start("a", &[]).await;
    let backend = DnsBackend::new("missing.cluster.test.", 7946, Some(server.addr)).unwrap();
    let da = support::start(&a, backend);
    wait_for(LIMIT, "two failed calls", || {
        da.system_info().get_nodes_count >= 2
    })
    .await;
    let info = da.system_info();
    assert_eq!(info.last_get_nodes_retry_kind, Some(RetryKind::AfterError));
    let err = info.last_get_nodes_result.unwrap();
    assert!(err.contains("DNS lookup of missing.cluster.test."), "{err}");
    // The record appears: ready.
    server
        .add_ip("missing.cluster.test.", "127.0.0.1".parse().unwrap())
        .await;
    assert!(da.wait_for_ready(LIMIT).await, "{:?}", da.system_info());

    // A server that does not answer: the resolver times out, discovery retries.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let backend =
        DnsBackend::new("x.cluster.test.", 7946, Some(dead.local_addr().unwrap())).unwrap();
    let b = start("b", &[]).await;
    let db = support::start(&b, backend);
    wait_for(LIMIT, "a failed call", || {
        db.system_info().get_nodes_count >= 1
    })
    .await;
    assert_eq!(
        db.system_info().last_get_nodes_retry_kind,
        Some(RetryKind::AfterError)
    );
}
