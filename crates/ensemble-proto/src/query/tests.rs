use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::member::Tags;

fn node(name: &str) -> (Queries, Box<dyn Handler>) {
    let q = Queries::new(name.to_owned(), QueryConfig::default(), 100);
    let h = q.handler();
    (q, h)
}

fn outputs(q: &mut Queries) -> Vec<Output> {
    std::iter::from_fn(|| q.poll_output()).collect()
}

fn start(q: &mut Queries, now: Instant, filter: QueryFilter, timeout: u64) -> (u64, Bytes) {
    let input = Input::Query {
        token: 1,
        name: "uptime".into(),
        payload: Bytes::from_static(b"ping"),
        filter,
        timeout: Some(Duration::from_secs(timeout)),
        want_ack: true,
    };
    q.handle(now, input);
    let mut id = None;
    let mut msg = None;
    for o in outputs(q) {
        match o {
            Output::Done {
                result: Ok(Reply::Started(i)),
                ..
            } => id = Some(i),
            Output::Broadcast(m) => msg = Some(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    (id.expect("started"), msg.expect("fanned out"))
}

/// Hands the encoded request to a member's fan-out handler as broadcast would.
fn deliver(q: &mut Queries, h: &mut Box<dyn Handler>, now: Instant, msg: &Bytes, tags: Tags) {
    let (id, payload) = h.broadcast_data(msg.clone());
    if h.merge(&id, &payload) {
        q.handle(now, Input::Delivered { tags });
    }
}

fn refusal(q: &mut Queries, now: Instant, input: Input) -> QueryError {
    q.handle(now, input);
    match outputs(q).pop() {
        Some(Output::Done { result: Err(e), .. }) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn query_input(name: &str, payload: usize, filter: QueryFilter, timeout: Duration) -> Input {
    Input::Query {
        token: 7,
        name: name.into(),
        payload: Bytes::from(vec![0; payload]),
        filter,
        timeout: Some(timeout),
        want_ack: false,
    }
}

#[test]
fn a_query_is_acked_handled_answered_and_finished() {
    let t0 = Instant::now();
    let (mut a, _) = node("a");
    let (mut b, mut hb) = node("b");
    let (id, msg) = start(&mut a, t0, QueryFilter::default(), 2);
    deliver(&mut b, &mut hb, t0, &msg, Tags::default());
    let out = outputs(&mut b);
    let Output::Send {
        to,
        msg: ack,
        deadline,
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!((to.as_str(), ack), ("a", &QueryMsg::Ack { id }));
    assert_eq!(
        *deadline,
        t0 + Duration::from_secs(2),
        "the ack is kept until the deadline"
    );
    let Output::Request(incoming) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(incoming.name, "uptime");
    assert_eq!(incoming.deadline, t0 + Duration::from_secs(2));
    let respond = |payload: &'static [u8]| Input::Respond {
        token: 3,
        query: incoming.query.clone(),
        payload: Bytes::from_static(payload),
    };
    b.handle(t0, respond(b"up 3 days"));
    let out = outputs(&mut b);
    let Output::Send {
        msg: response,
        deadline,
        ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!(*deadline, t0 + Duration::from_secs(2));
    assert_eq!(
        refusal(&mut b, t0, respond(b"again")),
        QueryError::AlreadyResponded
    );
    for msg in [ack.clone(), response.clone(), response.clone()] {
        a.handle(
            t0,
            Input::Message {
                from: "b".into(),
                msg,
            },
        );
    }
    let events: Vec<QueryEvent> = outputs(&mut a)
        .into_iter()
        .map(|o| match o {
            Output::Event { query, event } if query == id => event,
            other => panic!("{other:?}"),
        })
        .collect();
    let payload = Bytes::from_static(b"up 3 days");
    let from = "b".to_owned();
    assert_eq!(
        events,
        [
            QueryEvent::Ack { from: from.clone() },
            QueryEvent::Response { from, payload }
        ],
        "one ack and one response per member, duplicates dropped"
    );
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    a.handle(t0 + Duration::from_secs(2), Input::Tick);
    let done = QueryEvent::Done {
        acks: 1,
        responses: 1,
    };
    assert!(matches!(outputs(&mut a).as_slice(), [Output::Event { event, .. }] if *event == done));
    assert_eq!(a.running(), 0);
    // Past the deadline, the receiver no longer takes a response.
    b.handle(t0 + Duration::from_secs(2), Input::Tick);
    let late = refusal(&mut b, t0 + Duration::from_secs(2), respond(b"late"));
    assert_eq!(late, QueryError::UnknownQuery);
}

#[test]
fn the_origin_answers_its_own_query_in_place() {
    let t0 = Instant::now();
    let (mut a, mut ha) = node("a");
    let (id, msg) = start(&mut a, t0, QueryFilter::default(), 1);
    deliver(&mut a, &mut ha, t0, &msg, Tags::default());
    let out = outputs(&mut a);
    let ack = QueryEvent::Ack { from: "a".into() };
    assert!(matches!(&out[0], Output::Event { query, event } if *query == id && *event == ack));
    assert!(matches!(&out[1], Output::Request(_)), "{out:?}");
}

#[test]
fn filters_select_by_name_and_tag_pattern() {
    let tags = Tags::default().with("role", "web-1").with("dc", "eu");
    let f = |nodes: &[&str], pats: &[(&str, &str)]| QueryFilter {
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        tags: pats
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert!(selects(&f(&[], &[]), "a", &tags));
    assert!(selects(&f(&["b", "a"], &[]), "a", &tags));
    assert!(!selects(&f(&["b"], &[]), "a", &tags));
    assert!(selects(
        &f(&[], &[("role", "^web"), ("dc", "eu|us")]),
        "a",
        &tags
    ));
    assert!(!selects(&f(&[], &[("role", "^db")]), "a", &tags));
    assert!(
        !selects(&f(&[], &[("zone", ".*")]), "a", &tags),
        "missing tag"
    );
    assert!(!selects(&f(&[], &[("role", "(")]), "a", &tags), "bad regex");
    let huge = "a{1000}{1000}";
    assert!(!selects(&f(&[], &[("role", huge)]), "a", &tags), "too big");

    // Through the machine: a member the filter does not pick neither acks nor handles.
    let t0 = Instant::now();
    let (mut a, _) = node("a");
    let (mut b, mut hb) = node("b");
    let (_, msg) = start(&mut a, t0, f(&["c"], &[]), 1);
    deliver(&mut b, &mut hb, t0, &msg, tags);
    assert!(outputs(&mut b).is_empty());
    assert_eq!(b.stats().not_selected, 1);
}

#[test]
fn requests_are_delivered_once_and_forgotten_after_their_deadline() {
    let t0 = Instant::now();
    let (mut a, _) = node("a");
    let (mut b, mut hb) = node("b");
    let (_, msg) = start(&mut a, t0, QueryFilter::default(), 2);
    let (id, payload) = hb.broadcast_data(msg.clone());
    assert!(!hb.is_stale(&id));
    assert!(hb.merge(&id, &payload));
    assert!(!hb.merge(&id, &payload), "a duplicate");
    assert!(hb.is_stale(&id));
    assert_eq!(
        hb.graft(&id),
        crate::broadcast::Graft::Payload(payload.clone())
    );
    b.handle(
        t0,
        Input::Delivered {
            tags: Tags::default(),
        },
    );
    assert_eq!(outputs(&mut b).len(), 2, "one ack, one request");
    // The id is kept a timeout past the deadline, then forgotten.
    b.handle(t0 + Duration::from_secs(3), Input::Tick);
    assert!(hb.is_stale(&id));
    assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(4)));
    b.handle(t0 + Duration::from_secs(4), Input::Tick);
    assert!(!hb.is_stale(&id));
    assert_eq!(b.poll_timeout(), None);
    // A request whose id does not match its content is not taken.
    assert!(!hb.merge(&Bytes::from_static(b"x"), &payload));
    assert!(!hb.merge(&id, &Bytes::from_static(b"\xff\xff garbage")));
}

#[test]
fn oversized_or_malformed_queries_are_refused() {
    let t0 = Instant::now();
    let (mut a, _) = node("a");
    let s = Duration::from_secs(1);
    let none = QueryFilter::default;
    let e = refusal(&mut a, t0, query_input("x", MAX_PAYLOAD + 1, none(), s));
    assert!(matches!(e, QueryError::PayloadTooLarge { .. }), "{e}");
    let long = "n".repeat(MAX_NAME + 1);
    let e = refusal(&mut a, t0, query_input(&long, 1, none(), s));
    assert!(matches!(e, QueryError::BadName { .. }), "{e}");
    let e = refusal(&mut a, t0, query_input("", 1, none(), s));
    assert!(matches!(e, QueryError::BadName { .. }), "{e}");
    let e = refusal(&mut a, t0, query_input("x", 1, none(), MAX_TIMEOUT * 2));
    assert!(matches!(e, QueryError::BadTimeout { .. }), "{e}");
    let bad = QueryFilter {
        nodes: vec![],
        tags: vec![("role".into(), "(".into())],
    };
    let e = refusal(&mut a, t0, query_input("x", 1, bad, s));
    assert!(matches!(e, QueryError::BadFilter(_)), "{e}");
    let many = QueryFilter {
        nodes: (0..=MAX_FILTER_NODES).map(|i| format!("n{i}")).collect(),
        tags: vec![],
    };
    let e = refusal(&mut a, t0, query_input("x", 1, many, s));
    assert!(matches!(e, QueryError::BadFilter(_)), "{e}");
    assert_eq!(a.running(), 0);
    let (mut b, _) = node("b");
    let big = Input::Respond {
        token: 1,
        query: QueryId {
            origin: "a".into(),
            id: 1,
        },
        payload: Bytes::from(vec![0; MAX_RESPONSE + 1]),
    };
    let e = refusal(&mut b, t0, big);
    assert!(matches!(e, QueryError::ResponseTooLarge { .. }), "{e}");
}

#[test]
fn queries_in_flight_and_their_rate_are_bounded() {
    let t0 = Instant::now();
    let (mut a, _) = node("a");
    let max = QueryConfig::default().max_in_flight;
    for _ in 0..max {
        start(&mut a, t0, QueryFilter::default(), 1);
    }
    let e = refusal(
        &mut a,
        t0,
        query_input("x", 1, QueryFilter::default(), Duration::from_secs(1)),
    );
    assert_eq!(e, QueryError::TooMany { max });
    // The rate: the burst is spent over a few seconds of queries that finish at once.
    let config = QueryConfig::default();
    let mut now = t0 + Duration::from_secs(1);
    a.handle(now, Input::Tick);
    assert_eq!(a.running(), 0);
    let mut refused = None;
    for i in 0..(config.burst * 2) {
        now += Duration::from_millis(1);
        a.handle(now, Input::Tick);
        outputs(&mut a);
        let input = query_input("x", 1, QueryFilter::default(), Duration::from_millis(1));
        a.handle(now, input);
        if let Some(Output::Done { result: Err(e), .. }) = outputs(&mut a).pop() {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("rate limited");
    assert!(matches!(e, QueryError::RateLimited { .. }), "{e}");
    assert!(
        i >= config.burst - max as u32,
        "refused only past the burst ({i})"
    );
}

#[test]
fn a_flood_from_one_origin_is_dropped_at_receivers() {
    let t0 = Instant::now();
    let (mut b, mut hb) = node("b");
    let burst = QueryConfig::default().burst as u64;
    for id in 0..burst + 10 {
        let r = QueryRequest {
            id,
            origin: "flooder".into(),
            name: "x".into(),
            payload: Bytes::new(),
            filter: QueryFilter::default(),
            timeout_ms: 1000,
            want_ack: false,
        };
        deliver(&mut b, &mut hb, t0, &r.encode(), Tags::default());
    }
    let handled = outputs(&mut b).len() as u64;
    assert_eq!(handled, burst);
    assert_eq!(b.stats().rate_limited, 10);
}
