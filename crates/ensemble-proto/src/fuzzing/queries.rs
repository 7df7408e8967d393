//! Queries on untrusted bytes: requests, replies and anti-entropy summaries off the wire.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::member::Tags;
use crate::query::{Input, Queries, QueryConfig, QueryMsg, QueryRequest};

/// `bytes` as a request the fan-out handler merges (and as its id), as an anti-entropy
/// summary, and as a reply to a running query: nothing panics, and whatever decodes round
/// trips.
pub fn queries(bytes: &[u8]) {
    let now = Instant::now();
    let mut q = Queries::new("a".into(), QueryConfig::default(), 1);
    let mut h = q.handler();
    let payload = Bytes::copy_from_slice(bytes);
    if let Some(r) = QueryRequest::decode(bytes) {
        assert_eq!(QueryRequest::decode(&r.encode()), Some(r.clone()));
        h.merge(&r.key(), &payload);
    }
    h.merge(&payload, &payload);
    h.missing(bytes, 8);
    h.is_stale(&payload);
    h.graft(&payload);
    q.handle(
        now,
        Input::Delivered {
            tags: Tags::default(),
        },
    );
    let start = Input::Query {
        token: 1,
        name: "q".into(),
        payload: Bytes::new(),
        filter: Default::default(),
        timeout: Some(Duration::from_secs(1)),
        want_ack: true,
    };
    q.handle(now, start);
    if let Some(msg) = QueryMsg::decode(bytes) {
        assert_eq!(QueryMsg::decode(&msg.encode()), Some(msg.clone()));
        q.handle(
            now,
            Input::Message {
                from: "b".into(),
                msg,
            },
        );
    }
    q.handle(now + Duration::from_secs(3), Input::Tick);
    while q.poll_output().is_some() {}
}
