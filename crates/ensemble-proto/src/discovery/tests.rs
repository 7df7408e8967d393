//! The discovery schedule on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

const S: Duration = Duration::from_secs(1);

struct Clock {
    d: Discovery,
    now: Instant,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn node(port: u16) -> DiscoveredNode {
    DiscoveredNode::addr(addr(port).to_string())
}

impl Clock {
    fn new() -> Self {
        let now = Instant::now();
        Clock {
            d: Discovery::new(DiscoveryConfig::default(), now, 1_000_000),
            now,
        }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.d.poll_output()).collect()
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.d.handle(self.now, input);
        self.outputs()
    }

    /// Advances the clock to each timeout up to `by`, collecting outputs.
    fn run_for(&mut self, by: Duration) -> Vec<(Duration, Output)> {
        let end = self.now + by;
        let mut out = Vec::new();
        while let Some(t) = self.d.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.d.handle(self.now, Input::Tick);
            let at = self.now - self.start();
            out.extend(self.outputs().into_iter().map(|o| (at, o)));
        }
        self.now = end;
        out
    }

    fn start(&self) -> Instant {
        self.d.start
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start()
    }

    /// Runs until the next GetNodes and answers it with `result`.
    fn get_nodes(
        &mut self,
        result: Result<Vec<DiscoveredNode>, String>,
    ) -> (Duration, Vec<Output>) {
        let at = self.next_get_nodes();
        let out = self.handle(Input::GetNodesDone(result));
        (at, out)
    }

    fn next_get_nodes(&mut self) -> Duration {
        if self.d.get_nodes_running() {
            return self.elapsed();
        }
        let t = self.d.poll_timeout().expect("a timeout");
        self.now = t.max(self.now);
        self.d.handle(self.now, Input::Tick);
        let out = self.outputs();
        assert!(out.contains(&Output::GetNodes), "{out:?}");
        self.elapsed()
    }
}

#[test]
fn first_get_nodes_is_immediate_then_initial_every_5s() {
    let mut c = Clock::new();
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, Duration::ZERO);
    assert_eq!(
        c.d.system_info().last_get_nodes_retry_kind,
        Some(RetryKind::Initial)
    );
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 5 * S);
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 10 * S);
}

#[test]
fn only_one_get_nodes_at_a_time() {
    let mut c = Clock::new();
    c.next_get_nodes();
    assert!(c.d.get_nodes_running());
    // A slow backend: nothing else is asked for a whole minute.
    assert!(c.d.poll_timeout().unwrap() > c.now + 60 * S);
    let out = c.run_for(60 * S);
    assert!(out.iter().all(|(_, o)| *o != Output::GetNodes), "{out:?}");
    c.handle(Input::GetNodesDone(Ok(vec![])));
    assert_eq!(c.d.next_get_nodes().unwrap().0, c.now + 5 * S);
}

#[test]
fn after_error_retries_in_1s_then_back_to_initial() {
    let mut c = Clock::new();
    c.get_nodes(Err("connection refused".into()));
    let info = c.d.system_info();
    assert_eq!(info.last_get_nodes_retry_kind, Some(RetryKind::AfterError));
    assert_eq!(
        info.last_get_nodes_result.as_deref(),
        Some("connection refused")
    );
    let (at, _) = c.get_nodes(Err("again".into()));
    assert_eq!(at, S);
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 2 * S);
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 7 * S);
    assert!(c.d.is_ready());
}

#[test]
fn startup_phase_ends_after_5_minutes_then_regular() {
    let mut c = Clock::new();
    let mut calls = vec![];
    while c.elapsed() < 300 * S {
        let t = c.d.poll_timeout().unwrap();
        c.now = t.max(c.now);
        c.d.handle(c.now, Input::Tick);
        for o in c.outputs() {
            match o {
                Output::GetNodes => {
                    calls.push(c.elapsed().as_secs());
                    c.handle(Input::GetNodesDone(Ok(vec![])));
                }
                Output::PhaseChanged(p) => {
                    assert_eq!(p, Phase::Regular);
                    assert_eq!(c.elapsed(), 300 * S);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(calls, (0..=60).map(|i| i * 5).collect::<Vec<u64>>());
    assert_eq!(c.d.phase(), Phase::Regular);
    assert_eq!(
        c.d.system_info().last_get_nodes_retry_kind,
        Some(RetryKind::Regular)
    );
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 600 * S);
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 900 * S);
}

#[test]
fn a_peer_past_startup_ends_the_startup_phase_early() {
    let mut c = Clock::new();
    c.get_nodes(Ok(vec![]));
    c.now += 2 * S;
    let out = c.handle(Input::PeerPastStartup);
    assert_eq!(out, vec![Output::PhaseChanged(Phase::Regular)]);
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 5 * S);
    assert_eq!(
        c.d.system_info().last_get_nodes_retry_kind,
        Some(RetryKind::Regular)
    );
    let (at, _) = c.get_nodes(Ok(vec![]));
    assert_eq!(at, 305 * S);
    // Said once only.
    assert!(c.handle(Input::PeerPastStartup).is_empty());
}

#[test]
fn a_node_down_brings_get_nodes_forward_to_30s() {
    let mut c = Clock::new();
    c.handle(Input::PeerPastStartup);
    c.get_nodes(Ok(vec![node(2)]));
    c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Joined {
            name: "b".into(),
            addr: addr(2),
        },
    });
    assert_eq!(c.d.next_get_nodes().unwrap().0, c.now + 300 * S);
    c.now += 10 * S;
    c.handle(Input::MemberDown { name: "b".into() });
    assert_eq!(
        c.d.next_get_nodes().unwrap(),
        (c.now + 30 * S, RetryKind::AfterNodedown)
    );
    let info = c.d.system_info();
    assert!(info.unavailable_nodes.contains_key(&addr(2).to_string()));
    assert_eq!(info.nodedown_timestamps["b"], 1_000_000 + 10_000);
    let (at, out) = c.get_nodes(Ok(vec![node(2)]));
    assert_eq!(at, 40 * S);
    // The node is probed again; the next call is regular (the node-down is 30 s old).
    assert_eq!(
        out,
        vec![Output::Probe {
            addr: addr(2).to_string()
        }]
    );
    assert_eq!(
        c.d.system_info().last_get_nodes_retry_kind,
        Some(RetryKind::Regular)
    );
}

#[test]
fn a_node_down_during_a_get_nodes_makes_the_next_one_after_nodedown() {
    let mut c = Clock::new();
    c.handle(Input::PeerPastStartup);
    c.get_nodes(Ok(vec![]));
    c.next_get_nodes();
    c.now += S;
    c.handle(Input::MemberDown { name: "x".into() });
    c.now += S;
    c.handle(Input::GetNodesDone(Ok(vec![])));
    assert_eq!(
        c.d.next_get_nodes().unwrap(),
        (c.now + 30 * S, RetryKind::AfterNodedown)
    );
    // A node-down never delays a sooner call.
    let mut c = Clock::new();
    let out = c.handle(Input::MemberDown { name: "x".into() });
    assert_eq!(out, vec![Output::GetNodes]);
}

#[test]
fn discovered_nodes_are_probed_and_ready_waits_for_every_probe() {
    let mut c = Clock::new();
    assert!(!c.d.is_ready());
    let (_, out) = c.get_nodes(Ok(vec![node(1), node(2), node(3)]));
    assert_eq!(out.len(), 3);
    assert!(!c.d.is_ready());
    c.handle(Input::ProbeDone {
        addr: addr(1).to_string(),
        result: ProbeResult::Local,
    });
    c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Joined {
            name: "b".into(),
            addr: addr(2),
        },
    });
    // Node 3 never answers: not ready while its probe runs.
    assert!(!c.d.is_ready());
    let info = c.d.system_info();
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    // Probes are not repeated while one runs.
    let (_, out) = c.get_nodes(Ok(vec![node(1), node(2), node(3)]));
    assert!(out.is_empty(), "{out:?}");
    c.handle(Input::ProbeDone {
        addr: addr(3).to_string(),
        result: ProbeResult::Failed("connect timed out after 1s".into()),
    });
    assert!(c.d.is_ready());
    let info = c.d.system_info();
    assert_eq!(
        info.unavailable_nodes[&addr(3).to_string()],
        "connect timed out after 1s"
    );
    assert!(info.ready);
    // The unavailable node is probed again at the next call; it stays counted as failed.
    let (_, out) = c.get_nodes(Ok(vec![node(1), node(2), node(3)]));
    assert_eq!(
        out,
        vec![Output::Probe {
            addr: addr(3).to_string()
        }]
    );
    assert!(c.d.is_ready());
}

#[test]
fn not_ready_after_a_failed_get_nodes() {
    let mut c = Clock::new();
    c.get_nodes(Ok(vec![]));
    assert!(c.d.is_ready());
    c.get_nodes(Err("timeout".into()));
    assert!(!c.d.is_ready());
}

#[test]
fn a_late_failed_probe_after_the_node_came_up_does_not_mark_it_down() {
    let mut c = Clock::new();
    c.get_nodes(Ok(vec![DiscoveredNode {
        addr: addr(2).to_string(),
        name: Some("b".into()),
    }]));
    // The node joins us by itself (membership) while our probe is still out.
    c.handle(Input::MemberUp {
        name: "b".into(),
        addr: addr(2),
    });
    c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Failed("connect timed out".into()),
    });
    let info = c.d.system_info();
    assert!(info.unavailable_nodes.is_empty(), "{info:?}");
    assert_eq!(info.connected_nodes, vec!["b".to_owned()]);
    assert!(c.d.is_ready());
}

#[test]
fn a_bad_node_in_the_list_is_survived() {
    let mut c = Clock::new();
    let (_, out) = c.get_nodes(Ok(vec![
        DiscoveredNode::addr("no-such-host.invalid:7946"),
        DiscoveredNode::addr("not an address"),
        node(2),
    ]));
    assert_eq!(out.len(), 3);
    c.handle(Input::ProbeDone {
        addr: "no-such-host.invalid:7946".into(),
        result: ProbeResult::Failed("cannot resolve".into()),
    });
    c.handle(Input::ProbeDone {
        addr: "not an address".into(),
        result: ProbeResult::Failed("expected HOST:PORT".into()),
    });
    c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Joined {
            name: "b".into(),
            addr: addr(2),
        },
    });
    assert!(c.d.is_ready());
    assert_eq!(c.d.system_info().unavailable_nodes.len(), 2);
}

#[test]
fn tables_are_joined_one_at_a_time_with_each_connected_node() {
    let mut c = Clock::new();
    c.handle(Input::AddTable("t1".into()));
    c.handle(Input::AddTable("t2".into()));
    c.get_nodes(Ok(vec![node(2), node(3)]));
    let out = c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Joined {
            name: "b".into(),
            addr: addr(2),
        },
    });
    assert_eq!(
        out,
        vec![Output::JoinTable {
            node: "b".into(),
            table: "t1".into()
        }]
    );
    // Node c comes up: no second join while the first runs.
    let out = c.handle(Input::ProbeDone {
        addr: addr(3).to_string(),
        result: ProbeResult::Joined {
            name: "c".into(),
            addr: addr(3),
        },
    });
    assert!(out.is_empty());
    assert!(!c.d.is_ready());
    let mut joined = vec![];
    let mut next = ("b".to_owned(), "t1".to_owned());
    for _ in 0..4 {
        joined.push(next.clone());
        let out = c.handle(Input::TableJoined {
            node: next.0.clone(),
            table: next.1.clone(),
            result: if next.0 == "c" && next.1 == "t2" {
                Err("conflict".into())
            } else {
                Ok(())
            },
        });
        match out.as_slice() {
            [Output::JoinTable { node, table }] => next = (node.clone(), table.clone()),
            [] => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(joined.len(), 4);
    assert!(c.d.is_ready());
    let info = c.d.system_info();
    assert_eq!(info.join_results["c"]["t2"], "conflict");
    assert_eq!(info.tables, vec!["t1".to_owned(), "t2".to_owned()]);
    // A node that goes down loses its results and is joined again when it returns.
    c.handle(Input::MemberDown { name: "b".into() });
    assert!(!c.d.system_info().join_results.contains_key("b"));
    let out = c.handle(Input::MemberUp {
        name: "b".into(),
        addr: addr(2),
    });
    assert_eq!(
        out,
        vec![Output::JoinTable {
            node: "b".into(),
            table: "t1".into()
        }]
    );
    c.handle(Input::DeleteTable("t1".into()));
    assert_eq!(c.d.tables(), vec!["t2".to_owned()]);
}

#[test]
fn defaults_are_the_originals() {
    let c = DiscoveryConfig::default();
    assert_eq!(c.delay(RetryKind::Initial), 5 * S);
    assert_eq!(c.delay(RetryKind::AfterError), S);
    assert_eq!(c.delay(RetryKind::Regular), 300 * S);
    assert_eq!(c.delay(RetryKind::AfterNodedown), 30 * S);
    assert_eq!(c.startup_phase, 300 * S);
}

#[test]
fn get_nodes_asked_while_one_runs_runs_again_as_soon_as_it_ends() {
    let mut c = Clock::new();
    c.get_nodes(Ok(vec![]));
    // Asked for between calls: it runs at once, not 5 s later.
    let out = c.handle(Input::GetNodes);
    assert_eq!(out, vec![Output::GetNodes]);
    assert!(!c.d.should_retry_get_nodes());
    // Asked for while it runs: queued, not run twice at once.
    let out = c.handle(Input::GetNodes);
    assert!(out.is_empty(), "{out:?}");
    assert!(c.d.should_retry_get_nodes());
    assert!(c.d.system_info().should_retry_get_nodes);
    // When it ends the queued one starts with no delay.
    let out = c.handle(Input::GetNodesDone(Ok(vec![])));
    assert_eq!(out, vec![Output::GetNodes]);
    assert!(!c.d.should_retry_get_nodes());
    assert!(c.d.get_nodes_running());
    // And after that one, the schedule again.
    c.handle(Input::GetNodesDone(Ok(vec![])));
    assert!(!c.d.get_nodes_running());
    assert_eq!(c.d.next_get_nodes().unwrap().0, c.now + 5 * S);
}

#[test]
fn a_failed_join_is_tried_again_after_error() {
    let mut c = Clock::new();
    c.handle(Input::AddTable("t".into()));
    c.get_nodes(Ok(vec![node(2)]));
    let out = c.handle(Input::ProbeDone {
        addr: addr(2).to_string(),
        result: ProbeResult::Joined {
            name: "b".into(),
            addr: addr(2),
        },
    });
    let join = Output::JoinTable {
        node: "b".into(),
        table: "t".into(),
    };
    assert_eq!(out, vec![join.clone()]);
    let failed = c.elapsed();
    c.handle(Input::TableJoined {
        node: "b".into(),
        table: "t".into(),
        result: Err("timed out".into()),
    });
    let info = c.d.system_info();
    assert!(info.should_retry_join);
    assert_eq!(info.join_results["b"]["t"], "timed out");
    // A failed join counts as a result: ready.
    assert!(c.d.is_ready());
    // Tried again after_error (1 s) later, not before.
    let out = c.run_for(3 * S);
    let joins: Vec<_> = out.iter().filter(|(_, o)| *o == join).collect();
    assert_eq!(joins.len(), 1, "{out:?}");
    assert_eq!(joins[0].0, failed + S);
    // Fails again: again 1 s later; then it succeeds and the flag clears.
    c.handle(Input::TableJoined {
        node: "b".into(),
        table: "t".into(),
        result: Err("timed out".into()),
    });
    let out = c.run_for(S);
    assert!(out.iter().any(|(_, o)| *o == join), "{out:?}");
    c.handle(Input::TableJoined {
        node: "b".into(),
        table: "t".into(),
        result: Ok(()),
    });
    let info = c.d.system_info();
    assert!(!info.should_retry_join);
    assert_eq!(info.join_results["b"]["t"], "ok");
    assert!(c.run_for(10 * S).iter().all(|(_, o)| *o != join));
    // A node that goes down takes its pending retries with it.
    c.handle(Input::TableJoined {
        node: "b".into(),
        table: "t".into(),
        result: Err("x".into()),
    });
    assert!(c.d.should_retry_join());
    c.handle(Input::MemberDown { name: "b".into() });
    assert!(!c.d.should_retry_join());
}
