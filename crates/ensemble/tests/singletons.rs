//! Singletons between nodes in one process, over real TCP on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ensemble::{
    Node, ShutdownReason, Singleton, SingletonEvent, SingletonHandle, SingletonOptions,
    SingletonRole, TimerScope,
};

mod common;
use common::*;

type Log = Arc<Mutex<Vec<(String, SingletonEvent)>>>;

/// Records every event; asks for a timer every 50 ms whatever its role (where it fires is
/// the runtime's doing), and exposes whether it leads.
struct Recorder {
    node: String,
    log: Log,
    /// How many times `init` ran.
    inits: Arc<AtomicUsize>,
}

impl Singleton for Recorder {
    type State = bool;

    fn init(&mut self) -> bool {
        self.inits.fetch_add(1, Ordering::SeqCst);
        false
    }

    fn event(&mut self, _leading: bool, event: SingletonEvent) -> bool {
        let leading = match &event {
            SingletonEvent::NowLeader { .. } => true,
            SingletonEvent::Shutdown { .. } | SingletonEvent::NowFollower { .. } => false,
            _ => _leading,
        };
        self.log.lock().unwrap().push((self.node.clone(), event));
        leading
    }

    fn next_timer_in(&self, _leading: &bool) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }

    fn mod_state(&self, leading: &bool) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "leading": leading }))
    }
}

/// Who leads now, by the handlers' events, with the epoch.
fn leaders(log: &Log) -> Vec<(String, u64)> {
    let mut now: std::collections::BTreeMap<String, u64> = Default::default();
    for (node, e) in log.lock().unwrap().iter() {
        match e {
            SingletonEvent::NowLeader { epoch } => {
                now.insert(node.clone(), *epoch);
            }
            SingletonEvent::Shutdown { .. } | SingletonEvent::NowFollower { .. } => {
                now.remove(node);
            }
            _ => {}
        }
    }
    now.into_iter().collect()
}

fn count(log: &Log, node: &str, pred: impl Fn(&SingletonEvent) -> bool) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(n, e)| n == node && pred(e))
        .count()
}

/// Runs the singleton `name` with a [`Recorder`] on every node; one log for all.
async fn everywhere(
    nodes: &[Node],
    name: &str,
    options: SingletonOptions,
) -> (Log, Vec<Option<SingletonHandle>>) {
    let log: Log = Arc::default();
    let mut handles = Vec::new();
    for n in nodes {
        let rec = Recorder {
            node: n.name().to_string(),
            log: log.clone(),
            inits: Arc::default(),
        };
        let h = n.singleton(name, rec, options.clone()).await.unwrap();
        handles.push(Some(h));
    }
    (log, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_timers_and_changes_reach_only_it_and_a_stop_hands_over() {
    let nodes = cluster(3).await;
    let (log, mut handles) = everywhere(&nodes, "billing", SingletonOptions::new()).await;
    wait_for(Duration::from_secs(5), "one leader", || {
        leaders(&log).len() == 1
    })
    .await;
    let (leader, epoch) = leaders(&log)[0].clone();
    assert_eq!(leader, "n0", "the lowest name is preferred");
    // The followers hear the leader's claim a moment after it starts leading.
    let follows_n0 = |e: &SingletonEvent| {
        *e == SingletonEvent::NowFollower {
            leader: Some("n0".into()),
        }
    };
    wait_for(Duration::from_secs(5), "n1 and n2 follow n0", || {
        count(&log, "n1", follows_n0) == 1 && count(&log, "n2", follows_n0) == 1
    })
    .await;
    let statuses = nodes[1].singletons().await.unwrap();
    assert_eq!(statuses[0].leader.as_deref(), Some("n0"));
    assert_eq!(statuses[0].role, SingletonRole::Follower);
    assert_eq!(statuses[0].epoch, epoch);
    // The dump: when the activator started, since when it leads (the leader only), and the
    // handler's own state.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let created = statuses[0].created_at_ms.unwrap();
    assert!(
        created <= wall && wall - created < 60_000,
        "{created} {wall}"
    );
    assert_eq!(statuses[0].active_from_ms, None);
    assert_eq!(
        statuses[0].mod_state,
        Some(serde_json::json!({ "leading": false }))
    );
    let led = &nodes[0].singletons().await.unwrap()[0];
    let active_from = led.active_from_ms.unwrap();
    assert!(led.created_at_ms.unwrap() <= active_from && active_from <= wall);
    assert_eq!(led.mod_state, Some(serde_json::json!({ "leading": true })));
    // Timers: the leader only, though every handler asks for one.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let timers = |n: &str| count(&log, n, |e| *e == SingletonEvent::Timer);
    assert!(timers("n0") >= 3, "{}", timers("n0"));
    assert_eq!(timers("n1") + timers("n2"), 0);
    // Cluster changes: the leader only.
    let extra = start("n3", &[nodes[0].addr()]).await;
    let change = |e: &SingletonEvent| matches!(e, SingletonEvent::ClusterChange { node, up: true } if node == "n3");
    wait_for(
        Duration::from_secs(10),
        "the leader hears n3 come up",
        || count(&log, "n0", change) == 1,
    )
    .await;
    assert_eq!(count(&log, "n1", change) + count(&log, "n2", change), 0);
    // The leader stops: n1 takes over at once, at a higher epoch.
    let took = std::time::Instant::now();
    handles[0].take().unwrap().stop().await.unwrap();
    wait_for(Duration::from_secs(5), "n1 leads", || {
        leaders(&log).iter().any(|(n, _)| n == "n1")
    })
    .await;
    eprintln!("hand-over took {:?}", took.elapsed());
    let (next, next_epoch) = leaders(&log)[0].clone();
    assert_eq!(next, "n1");
    assert!(next_epoch > epoch);
    assert!(
        count(&log, "n0", |e| *e
            == SingletonEvent::Shutdown {
                reason: ShutdownReason::Stopped
            })
            == 1
    );
    let timers_after = timers("n0");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(timers("n0"), timers_after, "a stopped leader gets no timer");
    // A node that shuts down hands over too. Its handler hears `Shutdown` on its own task,
    // which may log it a moment after n2 logged `NowLeader`: wait for n2 to lead alone.
    nodes[1].shutdown().await;
    wait_for(Duration::from_secs(5), "n2 leads, alone", || {
        let now = leaders(&log);
        now.len() == 1 && now[0].0 == "n2"
    })
    .await;
    extra.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_timers_fire_on_followers_too_and_every_stopped_activator_hears_shutdown() {
    let nodes = cluster(3).await;
    let options = SingletonOptions::new().timers(TimerScope::EveryNode);
    let (log, mut handles) = everywhere(&nodes, "ticks", options).await;
    let timers = |n: &str| count(&log, n, |e| *e == SingletonEvent::Timer);
    wait_for(
        Duration::from_secs(10),
        "a leader and timers everywhere",
        || leaders(&log).len() == 1 && ["n0", "n1", "n2"].iter().all(|n| timers(n) >= 3),
    )
    .await;
    let stopped = |e: &SingletonEvent| {
        *e == SingletonEvent::Shutdown {
            reason: ShutdownReason::Stopped,
        }
    };
    // A follower that stops hears `Shutdown(Stopped)` as its last event (`stop` returns
    // after it), and its timer stops.
    let leader = leaders(&log)[0].0.clone();
    let mut followers = nodes.iter().map(|n| n.name()).filter(|n| *n != leader);
    let (follower, other) = (followers.next().unwrap(), followers.next().unwrap());
    let at = nodes.iter().position(|n| n.name() == follower).unwrap();
    handles[at].take().unwrap().stop().await.unwrap();
    let last = log
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(n, _)| n == follower)
        .map(|(_, e)| e.clone());
    assert!(last.as_ref().is_some_and(stopped), "{last:?}");
    assert_eq!(count(&log, follower, stopped), 1);
    let after = timers(follower);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(timers(follower), after, "a stopped activator gets no timer");
    // A node that shuts down stops its activators: a follower there hears it too.
    let at = nodes.iter().position(|n| n.name() == other).unwrap();
    nodes[at].shutdown().await;
    wait_for(
        Duration::from_secs(10),
        "the follower hears shutdown",
        || count(&log, other, stopped) == 1,
    )
    .await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_twice_or_with_a_zero_majority_fails_clearly() {
    let nodes = cluster(1).await;
    let n: &Node = &nodes[0];
    let rec = || Recorder {
        node: "n0".into(),
        log: Arc::default(),
        inits: Arc::default(),
    };
    let _h = n
        .singleton("s", rec(), SingletonOptions::new())
        .await
        .unwrap();
    let twice = n
        .singleton("s", rec(), SingletonOptions::new())
        .await
        .unwrap_err();
    assert!(twice.to_string().contains("already registered"), "{twice}");
    let zero = n
        .singleton("z", rec(), SingletonOptions::new().majority_of(0))
        .await
        .unwrap_err();
    assert!(zero.to_string().contains("at least 1"), "{zero}");
    // Alone with a majority of one, it leads.
    let log: Log = Arc::default();
    let one = Recorder {
        node: "n0".into(),
        log: log.clone(),
        inits: Arc::default(),
    };
    let _m = n
        .singleton("m", one, SingletonOptions::new().majority_of(1))
        .await
        .unwrap();
    wait_for(Duration::from_secs(5), "it leads alone", || {
        leaders(&log).len() == 1
    })
    .await;
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loser_of_a_name_conflict_starts_afresh_when_asked() {
    let nodes = cluster(2).await;
    let log: Log = Arc::default();
    let inits: Vec<Arc<AtomicUsize>> = vec![Arc::default(), Arc::default()];
    let mut handles = Vec::new();
    for (n, i) in nodes.iter().zip(&inits) {
        let rec = Recorder {
            node: n.name().to_string(),
            log: log.clone(),
            inits: i.clone(),
        };
        let options = SingletonOptions::new().restart_on_name_conflict();
        handles.push(n.singleton("split", rec, options).await.unwrap());
    }
    wait_for(Duration::from_secs(10), "n0 leads", || {
        leaders(&log)
            .iter()
            .map(|l| l.0.as_str())
            .collect::<Vec<_>>()
            == ["n0"]
    })
    .await;
    // A split: n1 takes over on its side.
    let cut0 = nodes[0].inject_partition(["n1".to_string()]).await.unwrap();
    let cut1 = nodes[1].inject_partition(["n0".to_string()]).await.unwrap();
    wait_for(Duration::from_secs(30), "both sides lead", || {
        leaders(&log).len() == 2
    })
    .await;
    nodes[0].resolve_partition(cut0).await.unwrap();
    nodes[1].resolve_partition(cut1).await.unwrap();
    // Healed: the higher epoch (n1's, elected later) keeps leading; n0 hears name_conflict
    // and its handler starts afresh.
    let conflict = |e: &SingletonEvent| {
        *e == SingletonEvent::Shutdown {
            reason: ShutdownReason::NameConflict,
        }
    };
    wait_for(Duration::from_secs(30), "n0 loses the conflict", || {
        count(&log, "n0", conflict) == 1
    })
    .await;
    wait_for(Duration::from_secs(10), "n0 runs init again", || {
        inits[0].load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(leaders(&log)[0].0, "n1");
    assert_eq!(
        inits[1].load(Ordering::SeqCst),
        1,
        "the winner keeps its state"
    );
    assert_eq!(count(&log, "n1", conflict), 0);
    for n in &nodes {
        n.shutdown().await;
    }
}
