//! Queries between nodes in one process, over real TCP on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;
use ensemble::{Error, QueryError, QueryEvent, QueryOptions};
use futures::StreamExt;

mod common;
use common::*;

/// Every event of a query, up to and including Done.
async fn gather(
    node: &ensemble::Node,
    payload: &'static str,
    options: QueryOptions,
) -> Vec<QueryEvent> {
    let all = async {
        let events = node.query("whoami", payload, options).await.unwrap();
        events.collect::<Vec<_>>().await
    };
    let all = tokio::time::timeout(Duration::from_secs(30), all);
    all.await.expect("the query starts and ends with Done")
}

fn acks(events: &[QueryEvent]) -> Vec<String> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            QueryEvent::Ack { from } => Some(from.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn responses(events: &[QueryEvent]) -> Vec<(String, String)> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            QueryEvent::Response { from, payload } => Some((
                from.to_string(),
                String::from_utf8_lossy(payload).into_owned(),
            )),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_gathers_every_members_ack_and_answer_and_a_filter_selects() {
    let nodes = cluster(3).await;
    for node in &nodes {
        let me = node.name().to_owned();
        node.register_query_handler("whoami", move |q| {
            let answer = format!("{me}:{}", String::from_utf8_lossy(&q.payload));
            async move { Some(Bytes::from(answer)) }
        })
        .await
        .unwrap();
    }
    let duplicate = nodes[0]
        .register_query_handler("whoami", |_| async { None })
        .await;
    assert!(matches!(duplicate, Err(Error::DuplicateName(_))));

    // Asked from a member that joined through n0 right after the cluster converged: n1 and
    // n2 may not be connected yet, and n2's ack and response wait for that connection.
    let timeout = Some(Duration::from_secs(5));
    let all = QueryOptions {
        timeout,
        ..Default::default()
    };
    let events = gather(&nodes[0], "hi", all).await;
    assert_eq!(acks(&events), ["n0", "n1", "n2"]);
    let expected: Vec<_> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| (n.to_string(), format!("{n}:hi")))
        .collect();
    assert_eq!(responses(&events), expected);
    assert_eq!(
        events.last(),
        Some(&QueryEvent::Done {
            acks: 3,
            responses: 3
        })
    );

    let one = QueryOptions {
        nodes: vec!["n2".into()],
        timeout,
        ..Default::default()
    };
    let events = gather(&nodes[0], "x", one).await;
    assert_eq!(acks(&events), ["n2"]);
    assert_eq!(responses(&events), [("n2".to_string(), "n2:x".to_string())]);
    assert_eq!(events.len(), 3, "one ack, one response, done: {events:?}");

    let big = vec![b'x'; 8 * 1024 + 1];
    let refused = nodes[0].query("whoami", big, QueryOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(Error::Query(QueryError::PayloadTooLarge { max: 8192, .. }))
        ),
        "{:?}",
        refused.err()
    );
}
