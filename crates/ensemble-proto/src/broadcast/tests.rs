//! Unit tests of the Plumtree logic on a tiny hand-driven network.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::events::{EventInput, EventLog, UserEvent};
use super::*;

/// A handler holding a set of messages; the id is the payload.
#[derive(Default)]
struct Set(BTreeMap<Bytes, Bytes>);

impl Handler for Set {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        (msg.clone(), msg)
    }
    fn merge(&mut self, id: &Bytes, payload: &Bytes) -> bool {
        self.0.insert(id.clone(), payload.clone()).is_none()
    }
    fn is_stale(&self, id: &Bytes) -> bool {
        self.0.contains_key(id)
    }
    fn graft(&self, id: &Bytes) -> Graft {
        self.0
            .get(id)
            .map_or(Graft::Lost, |p| Graft::Payload(p.clone()))
    }
    fn summary(&self) -> Option<Bytes> {
        let ids: Vec<Vec<u8>> = self.0.keys().map(|k| k.to_vec()).collect();
        Some(Bytes::from(postcard::to_stdvec(&ids).unwrap()))
    }
    fn missing(&mut self, summary: &[u8], limit: usize) -> Vec<(Bytes, Bytes)> {
        let theirs: BTreeSet<Vec<u8>> = postcard::from_bytes::<Vec<Vec<u8>>>(summary)
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.0
            .iter()
            .filter(|(k, _)| !theirs.contains(k.as_ref()))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

type Drop = Box<dyn FnMut(usize, usize, &BroadcastMsg) -> bool>;

struct Net {
    nodes: Vec<Plumtree>,
    now: Instant,
    queue: VecDeque<(usize, usize, BroadcastMsg)>,
    delivered: Vec<(usize, Delivery)>,
    sent: BTreeMap<&'static str, u64>,
    drop: Drop,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// Feeds a command and takes its answer out of the outputs.
fn call(p: &mut Plumtree, now: Instant, input: Input) -> Result<Reply, BroadcastError> {
    p.handle(now, input);
    let at = p
        .outputs
        .iter()
        .position(|o| matches!(o, Output::Done { .. }))
        .expect("answered at once");
    match p.outputs.remove(at) {
        Some(Output::Done { result, .. }) => result,
        _ => unreachable!("found above"),
    }
}

/// Registers `handler` under `name`.
fn register(p: &mut Plumtree, name: &str, handler: Box<dyn Handler>) -> Result<(), BroadcastError> {
    let name = name.into();
    let input = Input::Register {
        token: 0,
        name,
        handler,
    };
    call(p, Instant::now(), input).map(|_| ())
}

/// Broadcasts `msg` through `handler`; the message id.
fn broadcast(
    p: &mut Plumtree,
    now: Instant,
    handler: &str,
    msg: Bytes,
) -> Result<Bytes, BroadcastError> {
    let handler = handler.into();
    let input = Input::Broadcast {
        token: 0,
        handler,
        msg,
    };
    match call(p, now, input)? {
        Reply::Broadcast(id) => Ok(id),
        other => panic!("a broadcast answered {other:?}"),
    }
}

impl Net {
    /// `n` nodes with the `Set` handler under "set", linked as `edges` (None: full mesh).
    fn new(n: usize, edges: Option<&[(usize, usize)]>) -> Net {
        let now = Instant::now();
        let mut nodes: Vec<Plumtree> = (0..n)
            .map(|i| Plumtree::new(BroadcastConfig::default(), name(i), i as u64, now))
            .collect();
        for p in &mut nodes {
            register(p, "set", Box::<Set>::default()).unwrap();
            for j in 0..n {
                p.handle(now, Input::MemberUp(name(j)));
            }
        }
        let mut net = Net {
            nodes,
            now,
            queue: VecDeque::new(),
            delivered: Vec::new(),
            sent: BTreeMap::new(),
            drop: Box::new(|_, _, _| false),
        };
        let all: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect();
        for &(a, b) in edges.unwrap_or(&all) {
            net.link(a, b);
        }
        net.run();
        net.sent.clear();
        net
    }

    fn link(&mut self, a: usize, b: usize) {
        let now = self.now;
        self.nodes[a].handle(now, Input::NeighborUp(name(b)));
        self.nodes[b].handle(now, Input::NeighborUp(name(a)));
        self.collect();
    }

    fn unlink(&mut self, a: usize, b: usize) {
        let now = self.now;
        self.nodes[a].handle(now, Input::NeighborDown(name(b)));
        self.nodes[b].handle(now, Input::NeighborDown(name(a)));
        self.collect();
    }

    fn collect(&mut self) {
        for (i, p) in self.nodes.iter_mut().enumerate() {
            while let Some(o) = p.poll_output() {
                match o {
                    Output::Send { to, msg } => {
                        let to: usize = to[1..].parse().unwrap();
                        *self.sent.entry(msg.kind()).or_default() += 1;
                        self.queue.push_back((i, to, msg));
                    }
                    Output::Delivered(d) => self.delivered.push((i, d)),
                    Output::Done { .. } | Output::CustomExchange { .. } => {}
                }
            }
        }
    }

    /// Delivers every message in flight (and those they cause), in order.
    fn run(&mut self) {
        self.collect();
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if (self.drop)(from, to, &msg) {
                continue;
            }
            let now = self.now;
            self.nodes[to].handle(
                now,
                Input::Message {
                    from: name(from),
                    msg,
                },
            );
            self.collect();
        }
    }

    fn broadcast(&mut self, from: usize, msg: &str) {
        let now = self.now;
        broadcast(
            &mut self.nodes[from],
            now,
            "set",
            Bytes::from(msg.to_owned()),
        )
        .unwrap();
        self.run();
    }

    fn advance(&mut self, d: Duration) {
        let step = Duration::from_millis(50);
        let end = self.now + d;
        while self.now < end {
            self.now += step;
            let now = self.now;
            for p in &mut self.nodes {
                if p.poll_timeout().is_some_and(|t| t <= now) {
                    p.handle(now, Input::Tick);
                }
            }
            self.run();
        }
    }

    fn receivers(&self, msg: &str) -> BTreeSet<usize> {
        self.delivered
            .iter()
            .filter(|(_, d)| d.id.as_ref() == msg.as_bytes())
            .map(|(i, _)| *i)
            .collect()
    }

    fn count(&self, kind: &str) -> u64 {
        self.sent.get(kind).copied().unwrap_or(0)
    }
}

#[test]
fn in_a_full_mesh_the_root_pushes_once_to_each_node() {
    let mut net = Net::new(6, None);
    net.broadcast(2, "hello");
    assert_eq!(net.receivers("hello").len(), 6);
    assert_eq!(net.count("payload"), 5, "{:?}", net.sent);
    assert_eq!(net.count("prune"), 0);
    let (eager, _) = net.nodes[2].peers("n2");
    assert_eq!(eager.len(), 5);
    let (eager, lazy) = net.nodes[4].peers("n2");
    assert!(eager.is_empty(), "a leaf: {eager:?}");
    // Its three ring successors, less the root if it is one of them.
    assert!((2..=3).contains(&lazy.len()), "{lazy:?}");
    assert!(!lazy.contains(&"n2".to_string()));
}

#[test]
fn a_duplicate_prunes_its_link_to_lazy() {
    let mut net = Net::new(3, None);
    net.drop = Box::new(|from, to, m| from == 0 && to == 2 && m.kind() == "payload");
    net.broadcast(0, "m1");
    net.drop = Box::new(|_, _, _| false);
    assert!(!net.receivers("m1").contains(&2));
    // Node 2 grafts from node 1 for root n0: node 1 now pushes n0's payloads to it too.
    let graft = BroadcastMsg::Graft {
        items: vec![Announcement {
            handler: "set".into(),
            id: Bytes::from_static(b"m1"),
            root: "n0".into(),
            round: 1,
        }],
    };
    net.queue.push_back((2, 1, graft));
    net.run();
    assert!(net.nodes[1].peers("n0").0.contains(&"n2".to_string()));
    assert!(net.receivers("m1").contains(&2));
    net.sent.clear();
    net.broadcast(0, "m2");
    assert_eq!(net.count("prune"), 1, "{:?}", net.sent);
    assert_eq!(net.nodes[2].stats().duplicates, 1);
    // Pruned: the next broadcast is not duplicated.
    assert!(!net.nodes[1].peers("n0").0.contains(&"n2".to_string()));
    net.sent.clear();
    net.broadcast(0, "m3");
    assert_eq!(net.count("payload"), 2, "{:?}", net.sent);
    assert_eq!(net.count("prune"), 0);
}

#[test]
fn a_lost_payload_is_grafted_after_the_graft_timeout() {
    let mut net = Net::new(4, None);
    net.drop = Box::new(|from, to, m| from == 0 && to == 3 && m.kind() == "payload");
    net.broadcast(0, "m1");
    assert!(!net.receivers("m1").contains(&3));
    // Announcements go out on the lazy tick; the graft waits graft_timeout after that.
    net.advance(Duration::from_millis(1100));
    let grafted_early = net.count("graft");
    net.advance(Duration::from_millis(400));
    assert!(net.receivers("m1").contains(&3), "{:?}", net.sent);
    assert!(net.count("graft") >= 1);
    assert!(grafted_early <= net.count("graft"));
    // The grafted link is eager now for that tree.
    let stats = net.nodes[3].stats();
    assert_eq!(stats.grafts, 1, "{stats:?}");
}

#[test]
fn no_graft_when_the_payload_arrives_within_the_timeout() {
    let mut net = Net::new(4, None);
    net.broadcast(0, "m1");
    net.advance(Duration::from_secs(5));
    assert_eq!(net.count("graft"), 0, "{:?}", net.sent);
    assert!(net.count("ihave") > 0);
    assert_eq!(net.count("ihave"), net.count("ihave_ack"));
}

#[test]
fn unacked_announcements_are_sent_again() {
    let mut net = Net::new(3, None);
    let mut lost_once = false;
    net.drop = Box::new(move |_, _, m| {
        if m.kind() == "ihave_ack" && !lost_once {
            lost_once = true;
            return true;
        }
        false
    });
    net.broadcast(0, "m1");
    net.advance(Duration::from_millis(1500));
    let first = net.count("ihave");
    net.advance(Duration::from_secs(4));
    assert!(net.count("ihave") > first, "re-announced after ack_timeout");
    // Every batch is acked in the end: nothing stays outstanding.
    net.advance(Duration::from_secs(5));
    for p in &net.nodes {
        assert!(p.outstanding.is_empty(), "{:?}", p.outstanding);
    }
}

#[test]
fn exchange_repairs_what_a_partition_missed() {
    let mut net = Net::new(4, None);
    net.unlink(0, 3);
    net.unlink(1, 3);
    net.unlink(2, 3);
    net.broadcast(0, "during");
    assert_eq!(net.receivers("during").len(), 3);
    net.link(0, 3);
    net.run();
    assert!(net.receivers("during").contains(&3));
    let d = net.delivered.iter().find(|(i, _)| *i == 3).unwrap();
    assert!(d.1.repaired);
    assert_eq!(net.nodes[3].stats().repaired, 1);
}

#[test]
fn periodic_exchange_repairs_a_lost_message() {
    let mut net = Net::new(3, None);
    // Every path to node 2 loses the payload and the announcements.
    net.drop = Box::new(|_, to, m| to == 2 && matches!(m.kind(), "payload" | "ihave"));
    net.broadcast(0, "m1");
    net.drop = Box::new(|_, _, _| false);
    net.advance(Duration::from_secs(25));
    assert!(net.receivers("m1").contains(&2));
}

#[test]
fn cancelled_exchanges_ignore_their_replies() {
    let mut net = Net::new(2, None);
    net.unlink(0, 1);
    net.broadcast(0, "m1");
    let now = net.now;
    net.nodes[1].handle(now, Input::NeighborUp("n0".into()));
    net.nodes[0].handle(now, Input::NeighborUp("n1".into()));
    assert_eq!(net.nodes[1].exchanges().len(), 1);
    let n = net.nodes[1].cancel_exchanges(&ExchangeSelector::Peer("n0".into()));
    assert_eq!(n, 1);
    assert!(net.nodes[1].exchanges().is_empty());
    net.nodes[0].cancel_exchanges(&ExchangeSelector::All);
    net.run();
    assert!(!net.receivers("m1").contains(&1));
}

/// A ring of 12 in hash order, with chords across: a partial view, several hops wide.
fn ring_of_12() -> Vec<(usize, usize)> {
    let mut ring: Vec<usize> = (0..12).collect();
    ring.sort_by_key(|i| crate::view::position(&name(*i)));
    let mut edges: Vec<(usize, usize)> = (0..12).map(|i| (ring[i], ring[(i + 1) % 12])).collect();
    edges.extend((0..6).map(|i| (ring[i], ring[i + 6])));
    edges
}

#[test]
fn in_a_partial_view_every_root_costs_n_minus_one_payloads() {
    let mut net = Net::new(12, Some(&ring_of_12()));
    for (i, root) in [0, 5, 0, 11].into_iter().enumerate() {
        let msg = format!("m{i}");
        net.sent.clear();
        net.broadcast(root, &msg);
        assert_eq!(net.receivers(&msg).len(), 12, "{msg}");
        assert_eq!(net.count("payload"), 11, "{msg}: {:?}", net.sent);
        assert_eq!(net.count("prune"), 0);
    }
    let hops = net.delivered.iter().map(|(_, d)| d.round).max().unwrap();
    assert!(hops > 1, "payloads went through intermediate nodes");
}

#[test]
fn a_crashed_inner_node_is_repaired_by_grafts() {
    let mut net = Net::new(12, Some(&ring_of_12()));
    // Find a node that forwards n0's payloads, and cut its links without telling anyone.
    net.broadcast(0, "before");
    let inner = net
        .delivered
        .iter()
        .find(|(i, d)| d.round == 1 && !net.nodes[*i].children("n0", None, Some("n0")).is_empty())
        .map(|(i, _)| *i)
        .expect("an inner node");
    net.drop = Box::new(move |from, to, _| from == inner || to == inner);
    net.broadcast(0, "after");
    let missing = 11 - net.receivers("after").len();
    assert!(missing > 1, "the subtree of {inner} missed it");
    net.advance(Duration::from_secs(3));
    assert_eq!(net.receivers("after").len(), 11, "all but the cut node");
    assert!(net.count("graft") > 0);
}

#[test]
fn broadcast_checks_size_and_handler() {
    let mut net = Net::new(2, None);
    let now = net.now;
    let big = Bytes::from(vec![0u8; 64 * 1024 + 1]);
    let e = broadcast(&mut net.nodes[0], now, "set", big).unwrap_err();
    assert!(matches!(e, BroadcastError::TooLarge { max: 65536, .. }));
    assert!(e.to_string().contains("max_payload"));
    let e = broadcast(&mut net.nodes[0], now, "nope", Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(e, BroadcastError::UnknownHandler("nope".into()));
    let e = register(&mut net.nodes[0], "set", Box::<Set>::default());
    assert_eq!(e, Err(BroadcastError::DuplicateHandler("set".into())));
}

#[test]
fn messages_for_unknown_handlers_are_counted_not_fatal() {
    let mut net = Net::new(2, None);
    let now = net.now;
    net.nodes[1].handle(
        now,
        Input::Message {
            from: "n0".into(),
            msg: BroadcastMsg::Gossip {
                handler: "other".into(),
                id: Bytes::from_static(b"i"),
                payload: Bytes::from_static(b"p"),
                root: "n0".into(),
                round: 1,
                limit: None,
            },
        },
    );
    assert_eq!(net.nodes[1].stats().unknown_handler, 1);
}

#[test]
fn a_slow_peer_sheds_announcements_not_payloads() {
    let now = Instant::now();
    let config = BroadcastConfig {
        max_lazy_queue: 4,
        ..BroadcastConfig::default()
    };
    let mut p = Plumtree::new(config, "a".into(), 1, now);
    register(&mut p, "set", Box::<Set>::default()).unwrap();
    p.handle(now, Input::NeighborUp("b".into()));
    for i in 0..10 {
        p.announce(
            "b",
            Announcement {
                handler: "set".into(),
                id: Bytes::from(format!("{i}")),
                root: "a".into(),
                round: 0,
            },
        );
    }
    assert_eq!(p.stats().lazy_shed, 6);
    assert_eq!(p.lazy_queue["b"].len(), 4);
}

fn event_log(origin: &str, out: &Arc<Mutex<Vec<UserEvent>>>) -> EventLog {
    let out = out.clone();
    EventLog::new(origin.into(), 7, 100, move |e| out.lock().unwrap().push(e))
}

fn event(log: &mut EventLog, name: &str) -> (Bytes, Bytes) {
    let input = EventInput {
        name: name.into(),
        payload: Bytes::from_static(b"p"),
    };
    log.broadcast_data(input.encode())
}

#[test]
fn events_are_delivered_once_and_in_order_per_origin() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut a = event_log("a", &sent);
    let mut b = event_log("b", &got);
    let e1 = event(&mut a, "one");
    let e2 = event(&mut a, "two");
    let e3 = event(&mut a, "three");
    assert!(b.merge(&e3.0, &e3.1));
    assert!(b.merge(&e1.0, &e1.1));
    assert!(!b.merge(&e1.0, &e1.1), "duplicate");
    assert!(b.is_stale(&e3.0));
    assert!(!b.is_stale(&e2.0));
    let names = |v: &Arc<Mutex<Vec<UserEvent>>>| -> Vec<String> {
        v.lock().unwrap().iter().map(|e| e.name.clone()).collect()
    };
    assert_eq!(names(&got), ["one"], "three waits for two");
    assert!(b.merge(&e2.0, &e2.1));
    assert_eq!(names(&got), ["one", "two", "three"]);
    assert_eq!(b.graft(&e2.0), Graft::Payload(e2.1.clone()));
}

#[test]
fn a_newcomer_does_not_replay_old_events() {
    let a_out = Arc::new(Mutex::new(Vec::new()));
    let c_out = Arc::new(Mutex::new(Vec::new()));
    let mut a = event_log("a", &a_out);
    let old = event(&mut a, "old");
    a.merge(&old.0, &old.1);
    let mut c = event_log("c", &c_out);
    // The newcomer's summary gets nothing back.
    let newcomer = c.summary().unwrap();
    assert!(a.missing(&newcomer, 10).is_empty());
    // It learns the cluster's time from the reply's summary and ignores older events.
    let a_summary = a.summary().unwrap();
    c.missing(&a_summary, 10);
    assert!(!c.merge(&old.0, &old.1));
    let new = event(&mut a, "new");
    assert!(c.merge(&new.0, &new.1));
    assert_eq!(c_out.lock().unwrap().len(), 1);
}

#[test]
fn a_member_that_missed_everything_is_repaired_not_treated_as_new() {
    let a_out = Arc::new(Mutex::new(Vec::new()));
    let b_out = Arc::new(Mutex::new(Vec::new()));
    let mut a = event_log("a", &a_out);
    let mut b = event_log("b", &b_out);
    // Both start and exchange before anything happens: b has joined.
    let sb = b.summary().unwrap();
    a.missing(&sb, 10);
    let sa = a.summary().unwrap();
    b.missing(&sa, 10);
    // b is cut off while a sends; b holds nothing, yet it is not a newcomer.
    let e1 = event(&mut a, "1");
    a.merge(&e1.0, &e1.1);
    let sb = b.summary().unwrap();
    let items = a.missing(&sb, 10);
    assert_eq!(items.len(), 1, "b gets what it missed");
    for (id, p) in items {
        assert!(b.merge(&id, &p));
    }
    assert_eq!(b_out.lock().unwrap().len(), 1);
}

#[test]
fn a_newcomer_takes_concurrent_events_of_known_streams() {
    // o and p send; b saw o#1 and p#1..p#5 (clock 5); o#2 was sent at clock 2, concurrently.
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut o = event_log("o", &out);
    let mut p = event_log("p", &out);
    let mut b = event_log("b", &out);
    let o1 = event(&mut o, "o1");
    b.merge(&o1.0, &o1.1);
    for i in 0..5 {
        let e = event(&mut p, &format!("p{i}"));
        b.merge(&e.0, &e.1);
    }
    let o2 = event(&mut o, "o2");
    let o3 = event(&mut o, "o3");
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut a = event_log("a", &got);
    let sb = b.summary().unwrap();
    a.missing(&sb, 10);
    assert!(a.merge(&o2.0, &o2.1), "o#2 follows o#1, which a adopted");
    assert!(a.merge(&o3.0, &o3.1));
    let names: Vec<String> = got.lock().unwrap().iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, ["o2", "o3"]);
}

#[test]
fn a_gap_no_peer_can_fill_is_skipped_at_the_next_exchange() {
    // o keeps only its last 10 events.
    let mut o = EventLog::new("o".into(), 1, 10, |_| {});
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut n = event_log("n", &got);
    // n and o have met.
    let so = o.summary().unwrap();
    n.missing(&so, 10);
    let sn = n.summary().unwrap();
    o.missing(&sn, 10);
    let events: Vec<(Bytes, Bytes)> = (1..=30).map(|i| event(&mut o, &i.to_string())).collect();
    for (id, p) in &events {
        o.merge(id, p);
    }
    for (id, p) in &events[..5] {
        n.merge(id, p);
    }
    // n missed 6..=20, which o evicted; it has 21..=30 from somewhere.
    for (id, p) in &events[20..] {
        n.merge(id, p);
    }
    assert_eq!(got.lock().unwrap().len(), 5);
    let so = o.summary().unwrap();
    n.missing(&so, 10);
    assert_eq!(
        got.lock().unwrap().len(),
        15,
        "21..=30 delivered after the lost gap"
    );
    assert_eq!(n.skipped(), 15);
}

/// Regression (found by `ensemble nemesis`, seed 3): a restarted node takes each stream's
/// position from its first exchange and holds none of the events before it; its summary said
/// its log started past them, and a peer waiting on a gap there gave the gap up at its next
/// exchange with it, though the sender and others still held the events (acknowledged events
/// lost after a partition healed).
#[test]
fn a_restarted_nodes_adopted_position_makes_no_peer_skip_a_gap() {
    let mut o = EventLog::new("o".into(), 1, 100, |_| {});
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut n = event_log("n", &got);
    let mut b = event_log("b", &Arc::default());
    // n and o have met; b has everything o sent.
    n.missing(&o.summary().unwrap(), 10);
    o.missing(&n.summary().unwrap(), 10);
    let events: Vec<(Bytes, Bytes)> = (1..=10).map(|i| event(&mut o, &i.to_string())).collect();
    for (id, p) in &events {
        o.merge(id, p);
        b.merge(id, p);
    }
    // n was cut off during 4..=8, and has 9 and 10 since.
    for (id, p) in events[..3].iter().chain(&events[8..]) {
        n.merge(id, p);
    }
    // r restarts and takes o's stream from b's position (10): it holds none of it.
    let mut r = event_log("r", &Arc::default());
    r.missing(&b.summary().unwrap(), 10);
    n.missing(&r.summary().unwrap(), 10);
    assert_eq!(n.skipped(), 0, "4..=8 are still in o's and b's logs");
    // The next exchange with o fills the gap.
    for (id, p) in o.missing(&n.summary().unwrap(), 10) {
        n.merge(&id, &p);
    }
    let seqs: Vec<u64> = got.lock().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[test]
fn events_evicted_from_the_log_are_reported_lost() {
    let mut a = EventLog::new("a".into(), 1, 2, |_| {});
    let first = event(&mut a, "1");
    a.merge(&first.0, &first.1);
    for i in 0..3 {
        let e = event(&mut a, &i.to_string());
        a.merge(&e.0, &e.1);
    }
    assert_eq!(a.graft(&first.0), Graft::Lost);
}

fn peer_event(seq: u64, ltime: u64) -> Bytes {
    let e = UserEvent {
        origin: "peer".into(),
        stream: 1,
        seq,
        ltime,
        name: "e".into(),
        payload: Bytes::new(),
    };
    Bytes::from(postcard::to_stdvec(&e).unwrap())
}

/// Regression (found by review while writing the fuzz targets): streams number their events
/// from 1, but an event numbered 0 of a stream not seen yet was held back for ever; once more
/// than 1,024 events waited behind a gap, giving the gap up subtracted past zero (a panic in
/// a debug build; in a release build the stream's position wrapped to the end and every
/// later event of it was dropped as already delivered).
#[test]
fn an_event_numbered_zero_is_refused_and_a_gap_behind_it_is_given_up() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut log = event_log("n0", &got);
    assert!(
        !log.merge(&Bytes::new(), &peer_event(0, 1)),
        "0 is no event"
    );
    for seq in 2..=1100 {
        assert!(log.merge(&Bytes::new(), &peer_event(seq, seq)));
    }
    let seqs: Vec<u64> = got.lock().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (2..=1100).collect::<Vec<_>>(),
        "the gap at 1 given up"
    );
    assert_eq!(log.skipped(), 1);
}

/// Regression (found by review while writing the user_events fuzz target): an event from a
/// peer at the largest Lamport time made this node's next broadcast overflow its clock (a
/// panic in a debug build; in a release build the clock went back to 0, and newcomers dropped
/// this node's events as too old).
#[test]
fn an_event_at_the_end_of_time_does_not_overflow_the_clock() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut log = event_log("n0", &got);
    assert!(log.merge(&Bytes::new(), &peer_event(1, u64::MAX)));
    let (id, payload) = event(&mut log, "after");
    let e: UserEvent = postcard::from_bytes(&payload).unwrap();
    assert_eq!(e.ltime, u64::MAX);
    assert!(log.merge(&id, &payload));
}

#[test]
fn an_initial_lazy_peer_gets_announcements_until_it_grafts() {
    let mut net = Net::new(4, None);
    let n2 = "n2".to_string();
    net.nodes[0].config.initial_lazy.insert(n2.clone());
    for root in ["n0", "n1", "n3"] {
        let (eager, lazy) = net.nodes[0].peers(root);
        assert!(
            !eager.contains(&n2) && lazy.contains(&n2),
            "{root}: {eager:?} {lazy:?}"
        );
    }
    net.broadcast(0, "m1");
    assert_eq!(net.receivers("m1").len(), 3, "n2 only hears of it");
    assert!(!net.receivers("m1").contains(&2));
    // Announced to it on the lazy tick, grafted after graft_timeout.
    net.advance(Duration::from_millis(1500));
    assert!(net.receivers("m1").contains(&2), "{:?}", net.sent);
    // A graft for root n0 makes it eager for that root only.
    net.nodes[0].add_eager("n0", "n2");
    assert!(net.nodes[0].peers("n0").0.contains(&n2));
    assert!(!net.nodes[0].peers("n1").0.contains(&n2));
    net.sent.clear();
    net.broadcast(0, "m2");
    assert_eq!(net.count("payload"), 3, "{:?}", net.sent);
}

#[test]
fn an_initial_eager_peer_gets_payloads_of_every_root_until_pruned() {
    let mut net = Net::new(4, None);
    let n3 = "n3".to_string();
    net.nodes[0].config.initial_eager.insert(n3.clone());
    // In a full mesh n0 is a leaf of n1's tree: the initial eager peer is its only child.
    assert_eq!(net.nodes[0].peers("n1").0, vec![n3.clone()]);
    assert!(net.nodes[0].peers("n2").0.contains(&n3));
    net.broadcast(1, "m1");
    assert_eq!(net.count("payload"), 4, "one extra, to n3: {:?}", net.sent);
    // n3 got it twice: it prunes the later link, n0's, for n1's tree.
    assert_eq!(net.count("prune"), 1, "{:?}", net.sent);
    assert!(!net.nodes[0].peers("n1").0.contains(&n3));
    assert!(net.nodes[0].peers("n2").0.contains(&n3));
    net.sent.clear();
    net.broadcast(1, "m2");
    assert_eq!(net.count("payload"), 3, "{:?}", net.sent);
}

/// A `Set` whose anti-entropy is a protocol of its own.
#[derive(Default)]
struct CustomSet(Set);

impl Handler for CustomSet {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        self.0.broadcast_data(msg)
    }
    fn merge(&mut self, id: &Bytes, payload: &Bytes) -> bool {
        self.0.merge(id, payload)
    }
    fn is_stale(&self, id: &Bytes) -> bool {
        self.0.is_stale(id)
    }
    fn graft(&self, id: &Bytes) -> Graft {
        self.0.graft(id)
    }
    fn custom_exchange(&self) -> bool {
        true
    }
    fn summary(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"never sent"))
    }
}

#[test]
fn a_custom_exchange_is_run_by_the_application_and_its_items_merged() {
    let now = Instant::now();
    let mut p = Plumtree::new(BroadcastConfig::default(), "a".into(), 1, now);
    register(&mut p, "custom", Box::<CustomSet>::default()).unwrap();
    p.handle(now, Input::MemberUp("b".into()));
    p.handle(now, Input::NeighborUp("b".into()));
    let outs: Vec<Output> = std::iter::from_fn(|| p.poll_output()).collect();
    let session = outs
        .iter()
        .find_map(|o| match o {
            Output::CustomExchange {
                session,
                handler,
                peer,
            } if handler == "custom" && peer == "b" => Some(*session),
            _ => None,
        })
        .expect("the application is asked to run the exchange");
    let sent_summary = outs.iter().any(|o| {
        matches!(o, Output::Send { msg: BroadcastMsg::Exchange { handler, .. }, .. } if handler == "custom")
    });
    assert!(!sent_summary, "{outs:?}");
    assert_eq!(p.exchanges().len(), 1);
    assert_eq!(p.exchanges()[0].session, session);

    let items = vec![(Bytes::from_static(b"x"), Bytes::from_static(b"x"))];
    let done = Input::ExchangeDone {
        token: 7,
        session,
        items: items.clone(),
    };
    assert_eq!(call(&mut p, now, done).unwrap(), Reply::ExchangeDone(true));
    let outs: Vec<Output> = std::iter::from_fn(|| p.poll_output()).collect();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Delivered(d) if d.id.as_ref() == b"x")),
        "{outs:?}"
    );
    assert!(p.exchanges().is_empty());
    // Finished (or cancelled, or expired): a second report merges nothing.
    let again = Input::ExchangeDone {
        token: 8,
        session,
        items: vec![(Bytes::from_static(b"y"), Bytes::from_static(b"y"))],
    };
    assert_eq!(
        call(&mut p, now, again).unwrap(),
        Reply::ExchangeDone(false)
    );
    assert!(!std::iter::from_fn(|| p.poll_output()).any(|o| matches!(o, Output::Delivered(_))));
}
