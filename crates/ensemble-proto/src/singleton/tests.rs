use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::*;

/// Nodes running activators for "s", with message delivery that a partition can cut, and
/// membership verdicts given by hand.
struct Net {
    now: Instant,
    nodes: BTreeMap<String, Singletons>,
    cut: BTreeSet<(String, String)>,
    events: Vec<(Instant, String, SingletonEvent)>,
}

const S: &str = "s";

/// The token registrations use here.
const CALL: u64 = u64::MAX;

/// Inputs in the shape of calls, for brevity.
trait Calls {
    /// Registers `name`: the answer to [`Input::Register`].
    fn register(
        &mut self,
        now: Instant,
        name: &str,
        spec: SingletonSpec,
    ) -> Result<(), SingletonError>;
    /// A message from `from`.
    fn handle_message(&mut self, now: Instant, from: &str, msg: SingletonMsg);
}

impl Calls for Singletons {
    fn register(
        &mut self,
        now: Instant,
        name: &str,
        spec: SingletonSpec,
    ) -> Result<(), SingletonError> {
        let name = name.into();
        self.handle(
            now,
            Input::Register {
                token: CALL,
                name,
                spec,
            },
        );
        let at = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Done { token: CALL, .. }))
            .expect("answered at once");
        match self.outputs.remove(at) {
            Some(Output::Done { result, .. }) => result,
            _ => unreachable!("found above"),
        }
    }

    fn handle_message(&mut self, now: Instant, from: &str, msg: SingletonMsg) {
        let from = from.into();
        self.handle(now, Input::Message { from, msg });
    }
}

impl Net {
    fn new(names: &[&str], spec: SingletonSpec) -> Net {
        let now = Instant::now();
        let mut nodes = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            let mut s = Singletons::new(n.to_string(), SingletonConfig::default(), i as u64);
            for o in names.iter().filter(|o| *o != n) {
                s.handle(now, Input::PeerUp(o.to_string()));
                s.handle(now, Input::MemberUp(o.to_string()));
            }
            s.register(now, S, spec.clone()).unwrap();
            nodes.insert(n.to_string(), s);
        }
        Net::with(now, nodes)
    }

    /// Nodes set up by the caller; what they have to say is delivered.
    fn with(now: Instant, nodes: BTreeMap<String, Singletons>) -> Net {
        let mut net = Net {
            now,
            nodes,
            cut: BTreeSet::new(),
            events: Vec::new(),
        };
        net.deliver();
        net
    }

    fn deliver(&mut self) {
        loop {
            let mut msgs = Vec::new();
            for (name, s) in self.nodes.iter_mut() {
                while let Some(o) = s.poll_output() {
                    match o {
                        Output::Send { to, msg } => msgs.push((name.clone(), to, msg)),
                        Output::Event { event, .. } => {
                            self.events.push((self.now, name.clone(), event))
                        }
                        Output::Done { .. } => {}
                    }
                }
            }
            if msgs.is_empty() {
                return;
            }
            for (from, to, msg) in msgs {
                if self.cut.contains(&(from.clone(), to.clone())) {
                    continue;
                }
                if let Some(s) = self.nodes.get_mut(&to) {
                    s.handle_message(self.now, &from, msg);
                }
            }
        }
    }

    /// Runs for `d` in steps of 10 ms.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            for s in self.nodes.values_mut() {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle(now, Input::Tick);
                }
            }
            self.deliver();
        }
    }

    fn leaders(&self) -> Vec<(String, u64)> {
        self.nodes
            .iter()
            .filter_map(|(n, s)| {
                let i = s.info(S)?;
                (i.role == Role::Leader).then(|| (n.clone(), i.epoch))
            })
            .collect()
    }

    fn leader_seen_by(&self, node: &str) -> Option<String> {
        self.nodes[node].info(S)?.leader
    }

    /// Cuts `a` from `b` and has membership on each side report the other down.
    fn partition(&mut self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cut.insert((x.to_string(), y.to_string()));
                self.cut.insert((y.to_string(), x.to_string()));
                let now = self.now;
                self.nodes
                    .get_mut(*x)
                    .unwrap()
                    .handle(now, Input::MemberDown(y.to_string()));
                self.nodes
                    .get_mut(*y)
                    .unwrap()
                    .handle(now, Input::MemberDown(x.to_string()));
            }
        }
        self.deliver();
    }

    fn heal(&mut self) {
        let pairs: Vec<(String, String)> = std::mem::take(&mut self.cut).into_iter().collect();
        let now = self.now;
        for (x, y) in pairs {
            let s = self.nodes.get_mut(&x).unwrap();
            s.handle(now, Input::MemberUp(y.to_string()));
            s.handle(now, Input::PeerUp(y.to_string()));
        }
        self.deliver();
    }

    fn crash(&mut self, node: &str) {
        self.nodes.remove(node);
        let now = self.now;
        for s in self.nodes.values_mut() {
            s.handle(now, Input::MemberDown(node.to_string()));
        }
        self.deliver();
    }

    /// `node` stops its activator.
    fn unregister(&mut self, node: &str) {
        let now = self.now;
        let s = self.nodes.get_mut(node).unwrap();
        s.handle(now, Input::Unregister(S.to_string()));
        self.deliver();
    }

    fn events_of(&self, node: &str) -> Vec<SingletonEvent> {
        self.events
            .iter()
            .filter(|(_, n, _)| n == node)
            .map(|(_, _, e)| e.clone())
            .collect()
    }
}

#[test]
fn one_leader_is_elected_and_everyone_follows_it() {
    let mut net = Net::new(&["a", "b", "c"], SingletonSpec::default());
    assert!(
        net.leaders().is_empty(),
        "nobody leads before the settle time"
    );
    net.run(Duration::from_millis(400));
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(leaders[0].0, "a", "the lowest name is preferred");
    assert!(leaders[0].1 > 0);
    for n in ["b", "c"] {
        assert_eq!(net.leader_seen_by(n).as_deref(), Some("a"));
        assert_eq!(net.nodes[n].info(S).unwrap().epoch, leaders[0].1);
    }
    assert_eq!(
        net.events_of("a"),
        vec![
            SingletonEvent::NowFollower { leader: None },
            SingletonEvent::NowLeader {
                epoch: leaders[0].1
            }
        ]
    );
}

#[test]
fn a_crashed_leader_is_replaced_at_a_higher_epoch() {
    let mut net = Net::new(&["a", "b", "c"], SingletonSpec::default());
    net.run(Duration::from_millis(400));
    let (_, first) = net.leaders()[0].clone();
    net.crash("a");
    net.run(Duration::from_millis(10));
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].0, "b", "the next name takes over at once");
    assert!(leaders[0].1 > first);
    assert_eq!(net.leader_seen_by("c").as_deref(), Some("b"));
}

#[test]
fn a_leader_that_stops_hands_over_at_once() {
    let mut net = Net::new(&["a", "b", "c"], SingletonSpec::default());
    net.run(Duration::from_millis(400));
    net.unregister("a");
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "no time passed: {leaders:?}");
    assert_eq!(leaders[0].0, "b");
    assert!(net.events_of("a").contains(&SingletonEvent::Shutdown {
        reason: ShutdownReason::Stopped
    }));
}

#[test]
fn after_a_split_heals_the_higher_epoch_keeps_leading() {
    let mut net = Net::new(&["a", "b", "c", "d"], SingletonSpec::default());
    net.run(Duration::from_millis(400));
    net.partition(&["a", "b"], &["c", "d"]);
    net.run(Duration::from_millis(400));
    let leaders = net.leaders();
    assert_eq!(
        leaders.len(),
        2,
        "each side elects without the majority rule"
    );
    let winner = leaders.iter().max_by_key(|l| l.1).unwrap().clone();
    let loser = leaders.iter().min_by_key(|l| l.1).unwrap().clone();
    assert_eq!(winner.0, "c", "c took over later, at a higher epoch");
    net.heal();
    net.run(Duration::from_millis(50));
    assert_eq!(net.leaders(), vec![winner.clone()]);
    for n in ["a", "b", "d"] {
        assert_eq!(net.leader_seen_by(n), Some(winner.0.clone()), "{n}");
    }
    let tail: Vec<SingletonEvent> = net.events_of(&loser.0).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        vec![
            SingletonEvent::NowFollower {
                leader: Some(winner.0.clone())
            },
            SingletonEvent::Shutdown {
                reason: ShutdownReason::NameConflict
            },
        ]
    );
}

#[test]
fn with_the_majority_rule_a_minority_never_leads() {
    let spec = SingletonSpec {
        majority_of: Some(5),
    };
    let mut net = Net::new(&["a", "b", "c", "d", "e"], spec);
    net.run(Duration::from_secs(2));
    assert_eq!(net.leaders().len(), 1);
    let (_, first) = net.leaders()[0].clone();
    assert_eq!(net.leaders()[0].0, "a");
    // a and b are cut off: a loses its lease, c..e elect one of them after it ran out.
    net.partition(&["a", "b"], &["c", "d", "e"]);
    let mut ever_two = false;
    for _ in 0..300 {
        net.run(Duration::from_millis(10));
        ever_two |= net.leaders().len() > 1;
    }
    assert!(!ever_two, "two leaders at once");
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(leaders[0].0, "c");
    assert!(leaders[0].1 > first);
    assert!(net.events_of("a").contains(&SingletonEvent::Shutdown {
        reason: ShutdownReason::LostMajority
    }));
    // Healing keeps c; a and b follow it.
    net.heal();
    net.run(Duration::from_secs(1));
    assert_eq!(net.leaders()[0].0, "c");
    assert_eq!(net.leader_seen_by("a").as_deref(), Some("c"));
}

#[test]
fn a_restarted_leader_does_not_lead_below_its_old_epoch() {
    let mut net = Net::new(&["a", "b"], SingletonSpec::default());
    net.run(Duration::from_millis(400));
    let (_, first) = net.leaders()[0].clone();
    // a restarts faster than failure detection: a new activator, same name.
    let now = net.now;
    let mut fresh = Singletons::new("a".into(), SingletonConfig::default(), 99);
    fresh.handle(now, Input::PeerUp("b".to_string()));
    fresh.handle(now, Input::MemberUp("b".to_string()));
    fresh.register(now, S, SingletonSpec::default()).unwrap();
    net.nodes.insert("a".into(), fresh);
    net.nodes
        .get_mut("b")
        .unwrap()
        .handle(now, Input::PeerUp("a".to_string()));
    net.deliver();
    net.run(Duration::from_millis(400));
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert!(leaders[0].1 > first, "{leaders:?} after {first}");
    assert_eq!(net.leader_seen_by("b"), Some(leaders[0].0.clone()));
}

#[test]
fn bad_registrations_fail_clearly() {
    let now = Instant::now();
    let mut s = Singletons::new("a".into(), SingletonConfig::default(), 1);
    s.register(now, S, SingletonSpec::default()).unwrap();
    assert!(matches!(
        s.register(now, S, SingletonSpec::default()),
        Err(SingletonError::AlreadyRegistered(_))
    ));
    let zero = SingletonSpec {
        majority_of: Some(0),
    };
    assert!(s
        .register(now, "z", zero)
        .unwrap_err()
        .to_string()
        .contains("at least 1"));
}

#[test]
fn a_node_that_registers_after_the_others_greeted_it_still_defers_to_them() {
    let now = Instant::now();
    let mut a = Singletons::new("a".into(), SingletonConfig::default(), 1);
    let mut b = Singletons::new("b".into(), SingletonConfig::default(), 2);
    a.handle(now, Input::PeerUp("b".to_string()));
    a.handle(now, Input::MemberUp("b".to_string()));
    b.handle(now, Input::PeerUp("a".to_string()));
    b.handle(now, Input::MemberUp("a".to_string()));
    // a registers first; its Hosted reaches b before b runs the singleton.
    a.register(now, S, SingletonSpec::default()).unwrap();
    while let Some(o) = a.poll_output() {
        if let Output::Send { msg, .. } = o {
            b.handle_message(now, "a", msg);
        }
    }
    b.register(now, S, SingletonSpec::default()).unwrap();
    let mut net = Net::with(
        now,
        BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]),
    );
    net.run(Duration::from_secs(1));
    assert_eq!(net.leaders().len(), 1, "{:?}", net.events);
    assert!(
        net.events
            .iter()
            .all(|(_, _, e)| !matches!(e, SingletonEvent::Shutdown { .. })),
        "nobody led by mistake: {:?}",
        net.events
    );
}

#[test]
fn a_leader_whose_process_is_gone_is_replaced_before_membership_says_so() {
    let mut net = Net::new(&["a", "b", "c"], SingletonSpec::default());
    net.run(Duration::from_millis(400));
    let (_, first) = net.leaders()[0].clone();
    // a dies: connections close, redials are refused; membership has not decided yet.
    net.nodes.remove("a");
    let now = net.now;
    for s in net.nodes.values_mut() {
        s.handle(now, Input::PeerGone("a".to_string()));
        s.handle(now, Input::Gone("a".to_string()));
    }
    net.deliver();
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(leaders[0].0, "b", "at once, not one takeover step later");
    assert!(leaders[0].1 > first);
    // The majority rule does not take the hint: the lease decides.
    let spec = SingletonSpec {
        majority_of: Some(3),
    };
    let mut net = Net::new(&["a", "b", "c"], spec);
    net.run(Duration::from_secs(2));
    assert_eq!(net.leaders()[0].0, "a");
    net.cut.insert(("a".into(), "b".into()));
    net.cut.insert(("a".into(), "c".into()));
    let now = net.now;
    for n in ["b", "c"] {
        let s = net.nodes.get_mut(n).unwrap();
        s.handle(now, Input::PeerGone("a".to_string()));
        s.handle(now, Input::Gone("a".to_string()));
    }
    net.deliver();
    assert_eq!(net.leaders(), vec![("a".to_string(), net.leaders()[0].1)]);
}

fn votes(s: &mut Singletons) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(o) = s.poll_output() {
        if let Output::Send {
            to,
            msg: SingletonMsg::Vote { granted, .. },
        } = o
        {
            out.push((to, granted));
        }
    }
    out
}

#[test]
fn a_voter_gives_one_vote_per_lease_even_to_the_leader_it_followed() {
    let spec = SingletonSpec {
        majority_of: Some(3),
    };
    let t0 = Instant::now();
    let mut c = Singletons::new("c".into(), SingletonConfig::default(), 3);
    for o in ["a", "b"] {
        c.handle(t0, Input::PeerUp(o.to_string()));
        c.handle(t0, Input::MemberUp(o.to_string()));
    }
    c.register(t0, S, spec).unwrap();
    let t1 = t0 + Duration::from_secs(2);
    let claim = SingletonMsg::Claim {
        name: S.into(),
        epoch: next_epoch(0, 1),
        seq: 1,
    };
    c.handle_message(t1, "a", claim);
    assert_eq!(c.info(S).unwrap().leader.as_deref(), Some("a"));
    // a falls silent; its lease runs out at c.
    let t2 = t1 + Duration::from_millis(1200);
    votes(&mut c);
    let e2 = next_epoch(next_epoch(0, 1), 2);
    let prepare = |epoch| SingletonMsg::Prepare {
        name: S.into(),
        epoch,
    };
    c.handle_message(t2, "b", prepare(e2));
    assert_eq!(votes(&mut c), vec![("b".to_string(), true)]);
    // a, still followed here, asks higher a moment later: refused while b's lease may run.
    c.handle_message(
        t2 + Duration::from_millis(1),
        "a",
        prepare(next_epoch(e2, 1)),
    );
    assert_eq!(votes(&mut c), vec![("a".to_string(), false)]);
}

#[test]
fn with_the_majority_rule_a_restarted_voter_does_not_elect_a_second_leader() {
    let spec = SingletonSpec {
        majority_of: Some(3),
    };
    let mut net = Net::new(&["a", "b", "c"], spec.clone());
    net.run(Duration::from_secs(2));
    assert_eq!(net.leaders().len(), 1);
    assert_eq!(net.leaders()[0].0, "a");
    // The a-c link breaks (membership sees both up): a's lease rests on b's acks alone.
    net.cut.insert(("a".into(), "c".into()));
    net.cut.insert(("c".into(), "a".into()));
    net.run(Duration::from_millis(300));
    // b restarts at once, remembering nothing.
    let now = net.now;
    let mut fresh = Singletons::new("b".into(), SingletonConfig::default(), 77);
    for o in ["a", "c"] {
        fresh.handle(now, Input::PeerUp(o.to_string()));
        fresh.handle(now, Input::MemberUp(o.to_string()));
    }
    fresh.register(now, S, spec).unwrap();
    net.nodes.insert("b".into(), fresh);
    for o in ["a", "c"] {
        net.nodes
            .get_mut(o)
            .unwrap()
            .handle(now, Input::PeerUp("b".to_string()));
    }
    net.deliver();
    for _ in 0..400 {
        net.run(Duration::from_millis(10));
        let leaders = net.leaders();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
    }
}

#[test]
fn nodes_that_run_a_singleton_with_another_majority_rule_are_reported_and_ignored() {
    let now = Instant::now();
    let mut nodes = BTreeMap::new();
    for (i, (name, majority)) in [("a", Some(1)), ("b", None)].into_iter().enumerate() {
        let mut s = Singletons::new(name.into(), SingletonConfig::default(), i as u64);
        let other = if name == "a" { "b" } else { "a" };
        s.handle(now, Input::PeerUp(other.to_string()));
        s.handle(now, Input::MemberUp(other.to_string()));
        s.register(
            now,
            S,
            SingletonSpec {
                majority_of: majority,
            },
        )
        .unwrap();
        nodes.insert(name.to_string(), s);
    }
    let mut net = Net::with(now, nodes);
    net.run(Duration::from_secs(2));
    for (n, other) in [("a", "b"), ("b", "a")] {
        let info = net.nodes[n].info(S).unwrap();
        assert_eq!(info.mismatched, vec![other.to_string()], "{n}");
        assert!(info.candidates.is_empty(), "{n}");
        assert_eq!(
            info.role,
            Role::Leader,
            "{n} does not follow the other's claims"
        );
    }
}

#[test]
fn info_tells_when_the_activator_was_created_and_since_when_it_leads() {
    let mut net = Net::new(&["a", "b"], SingletonSpec::default());
    let created = net.now;
    net.run(Duration::from_millis(400));
    let led = net
        .events
        .iter()
        .find(|(_, n, e)| n == "a" && matches!(e, SingletonEvent::NowLeader { .. }))
        .map(|(at, _, _)| *at)
        .expect("a leads");
    assert!(led > created);
    let a = net.nodes["a"].info(S).unwrap();
    assert_eq!((a.created, a.active_from), (created, Some(led)));
    let b = net.nodes["b"].info(S).unwrap();
    assert_eq!((b.created, b.active_from), (created, None));
    // After a hand-over the new leader's leadership begins then; the old one's is over.
    net.run(Duration::from_millis(100));
    net.unregister("a");
    let b = net.nodes["b"].info(S).unwrap();
    assert_eq!(b.active_from, Some(net.now));
}
