//! The executor: applies a schedule to the real agents at its times and records what it did
//! ([`FaultRecord`]). Partitions go through each agent's `POST /v1/partitions` (on both sides
//! of every cut, with a time to live as a safety net) and end with `DELETE`; an agent
//! restarted or continued gets the cuts still in force for it injected again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::de::IgnoredAny;

use super::cluster::Cluster;
use super::history::Clock;
use super::record::{cuts_between, Applied, FaultRecord};
use super::schedule::{FaultEvent, FaultKind};
use crate::views::{Inject, PartitionRefView, PartitionView};

/// How much longer than planned a partition may last if the nemesis cannot resolve it.
const TTL_MARGIN_MS: u64 = 5_000;

pub struct Executor {
    cluster: Arc<Mutex<Cluster>>,
    clock: Clock,
    record: Arc<Mutex<FaultRecord>>,
    seed: u64,
    /// Agents stopped now.
    paused: BTreeSet<String>,
    /// Partition references an agent could not be asked to resolve (it was paused).
    stale: Vec<(String, u64)>,
    /// The floods running, by the schedule's index.
    floods: BTreeMap<usize, std::thread::JoinHandle<u64>>,
    /// When the schedule's time 0 is, on the campaign's clock.
    offset_ms: u64,
}

impl Executor {
    pub fn new(cluster: Arc<Mutex<Cluster>>, clock: Clock, seed: u64) -> Executor {
        Executor {
            cluster,
            clock,
            record: Arc::default(),
            seed,
            paused: BTreeSet::new(),
            stale: Vec::new(),
            floods: BTreeMap::new(),
            offset_ms: 0,
        }
    }

    /// The record, shared: it grows while the executor runs.
    pub fn record(&self) -> Arc<Mutex<FaultRecord>> {
        self.record.clone()
    }

    /// Applies `schedule`, whose time 0 is `offset_ms` on the campaign's clock (blocks until
    /// its last fault ended), then heals anything left.
    pub fn run(&mut self, schedule: &[FaultEvent], offset_ms: u64) {
        self.offset_ms = offset_ms;
        let mut steps: Vec<(u64, bool, usize)> = Vec::new();
        for (i, f) in schedule.iter().enumerate() {
            steps.push((offset_ms + f.start_ms, true, i));
            steps.push((offset_ms + f.end_ms, false, i));
        }
        // By time; at one time, ends before starts.
        steps.sort_by_key(|&(t, start, i)| (t, start, i));
        let mut slot: BTreeMap<usize, usize> = BTreeMap::new();
        for (t, start, i) in steps {
            let wait = self
                .clock
                .at(t)
                .saturating_duration_since(std::time::Instant::now());
            std::thread::sleep(wait);
            if start {
                let applied = self.start(i, &schedule[i]);
                let mut rec = self.record.lock().expect("record");
                slot.insert(i, rec.applied.len());
                rec.applied.push(applied);
            } else if let Some(&k) = slot.get(&i) {
                self.end(i, k, &schedule[i]);
            }
        }
        self.heal_all();
    }

    fn start(&mut self, i: usize, f: &FaultEvent) -> Applied {
        let now = self.clock.now_ms();
        let mut a = Applied {
            kind: f.kind.name(),
            start_ms: now,
            ..Applied::default()
        };
        let names = self.cluster.lock().expect("cluster").names();
        let others =
            |x: &str| -> Vec<String> { names.iter().filter(|n| *n != x).cloned().collect() };
        match &f.kind {
            FaultKind::MajoritySplit { minority } => {
                let rest: Vec<String> = names
                    .iter()
                    .filter(|n| !minority.contains(n))
                    .cloned()
                    .collect();
                a.targets = minority.clone();
                a.cuts = cuts_between(minority, &rest);
            }
            FaultKind::NonTransitive { a: x, b: y } => {
                a.targets = vec![x.clone(), y.clone()];
                a.cuts = vec![(x.clone(), y.clone())];
            }
            FaultKind::Bridge {
                left,
                right,
                bridge,
            } => {
                a.targets = vec![bridge.clone()];
                a.cuts = cuts_between(left, right);
            }
            FaultKind::IsolateLeader => match self.leader() {
                Some(l) => {
                    a.cuts = cuts_between(std::slice::from_ref(&l), &others(&l));
                    a.targets = vec![l];
                }
                None => a
                    .notes
                    .push("no agent named a leader: nothing isolated".into()),
            },
            FaultKind::Pause { node } => {
                a.targets = vec![node.clone()];
                match self
                    .cluster
                    .lock()
                    .expect("cluster")
                    .signal(node, Signal::SIGSTOP)
                {
                    Ok(()) => {
                        self.paused.insert(node.clone());
                    }
                    Err(e) => a.notes.push(format!("SIGSTOP {node}: {e:#}")),
                }
            }
            FaultKind::KillRestart { node, .. } => {
                a.targets = vec![node.clone()];
                if let Err(e) = self.cluster.lock().expect("cluster").kill(node) {
                    a.notes.push(format!("SIGKILL {node}: {e:#}"));
                }
                // Its partitions died with it; their references may name new ones later.
                self.stale.retain(|(n, _)| n != node);
                let mut rec = self.record.lock().expect("record");
                for f in rec.applied.iter_mut().filter(|f| f.end_ms.is_none()) {
                    f.refs.retain(|(n, _)| n != node);
                }
            }
            FaultKind::Flood { node } => {
                a.targets = vec![node.clone()];
                match self.cluster.lock().expect("cluster").cluster_addr(node) {
                    Ok(addr) => {
                        let time =
                            Duration::from_millis((self.offset_ms + f.end_ms).saturating_sub(now));
                        let seed = self.seed.wrapping_add(i as u64);
                        self.floods.insert(
                            i,
                            std::thread::spawn(move || {
                                super::flood::flood(&addr, time, seed).connections
                            }),
                        );
                    }
                    Err(e) => a.notes.push(format!("flood {node}: {e:#}")),
                }
            }
        }
        if !a.cuts.is_empty() {
            let ttl = (self.offset_ms + f.end_ms).saturating_sub(now) + TTL_MARGIN_MS;
            let cuts = a.cuts.clone();
            for (agent, peers) in by_agent(&cuts) {
                self.inject(&agent, peers, ttl, &mut a);
            }
        }
        a
    }

    fn end(&mut self, i: usize, k: usize, f: &FaultEvent) {
        let mut a = std::mem::take(&mut self.record.lock().expect("record").applied[k]);
        for (agent, r) in std::mem::take(&mut a.refs) {
            if self.paused.contains(&agent) {
                self.stale.push((agent.clone(), r));
            } else if let Ok(c) = self.cluster.lock().expect("cluster").client(&agent) {
                // An agent killed since forgot it: an error then is fine.
                let _ = c.delete::<IgnoredAny>(&format!("/v1/partitions/{r}"));
            }
            a.refs.push((agent, r));
        }
        match &f.kind {
            FaultKind::Pause { node } if self.paused.remove(node) => {
                let sent = self
                    .cluster
                    .lock()
                    .expect("cluster")
                    .signal(node, Signal::SIGCONT);
                if let Err(e) = sent {
                    a.notes.push(format!("SIGCONT {node}: {e:#}"));
                }
                self.rejoin(node, k, &mut a);
            }
            FaultKind::KillRestart { node, new_port } => {
                let started = self
                    .cluster
                    .lock()
                    .expect("cluster")
                    .restart(node, *new_port);
                match started {
                    Ok(()) => self.rejoin(node, k, &mut a),
                    Err(e) => a.notes.push(format!("restart {node}: {e:#}")),
                }
            }
            FaultKind::Flood { node } => {
                if let Some(t) = self.floods.remove(&i) {
                    let n = t.join().unwrap_or(0);
                    a.notes.push(format!("{n} connections to {node}"));
                }
                if !self.answers(node) {
                    a.notes.push(format!(
                        "{node} did not answer its API within 10 s of the flood"
                    ));
                }
            }
            _ => {}
        }
        a.end_ms = Some(self.clock.now_ms());
        self.record.lock().expect("record").applied[k] = a;
    }

    /// Agent `node` runs again (restarted or continued): it resolves the partitions of faults
    /// that ended while it was stopped, and gets the cuts still in force for it.
    fn rejoin(&mut self, node: &str, this: usize, a: &mut Applied) {
        let client = self.cluster.lock().expect("cluster").client(node);
        let stale: Vec<u64> = self
            .stale
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, r)| *r)
            .collect();
        self.stale.retain(|(n, _)| n != node);
        if let Ok(c) = &client {
            for r in stale {
                let _ = c.delete::<IgnoredAny>(&format!("/v1/partitions/{r}"));
            }
        }
        let now = self.clock.now_ms();
        let live: Vec<(usize, Vec<String>)> = {
            let rec = self.record.lock().expect("record");
            rec.applied
                .iter()
                .enumerate()
                .filter(|(k, f)| *k != this && f.end_ms.is_none() && !f.cuts.is_empty())
                .map(|(k, f)| (k, by_agent(&f.cuts).remove(node).unwrap_or_default()))
                .filter(|(_, peers)| !peers.is_empty())
                .collect()
        };
        for (k, peers) in live {
            let mut scratch = Applied::default();
            self.inject(node, peers, 30_000, &mut scratch);
            let mut rec = self.record.lock().expect("record");
            rec.applied[k].refs.extend(scratch.refs);
            rec.applied[k].notes.extend(scratch.notes);
            a.notes
                .push(format!("cuts of fault {k} injected again at {now} ms"));
        }
    }

    /// Cuts `peers` off at `agent` (skipped while it is stopped or not running).
    fn inject(&self, agent: &str, peers: Vec<String>, ttl_ms: u64, a: &mut Applied) {
        if self.paused.contains(agent) {
            return;
        }
        let client = {
            let c = self.cluster.lock().expect("cluster");
            if !c.running(agent) {
                return;
            }
            c.client(agent)
        };
        let body = Inject {
            nodes: peers,
            ttl_ms: Some(ttl_ms),
        };
        match client.and_then(|c| c.post::<PartitionRefView>("/v1/partitions", &body)) {
            Ok(r) => a.refs.push((agent.to_owned(), r.reference)),
            Err(e) => a.notes.push(format!("partition at {agent}: {e:#}")),
        }
    }

    /// Who leads the majority-rule singleton, as the first agent that answers says.
    fn leader(&self) -> Option<String> {
        let c = self.cluster.lock().expect("cluster");
        let names = c.names();
        let clients: Vec<_> = names
            .iter()
            .filter(|n| c.running(n) && !self.paused.contains(*n))
            .filter_map(|n| c.client(n).ok())
            .collect();
        drop(c);
        clients.iter().find_map(|cl| {
            let all: Vec<serde_json::Value> = cl.get("/v1/singletons").ok()?;
            all.iter().find(|s| s["name"] == super::LEADER_SINGLETON)?["leader"]
                .as_str()
                .map(str::to_owned)
        })
    }

    /// Whether agent `node` answers its API within 10 s.
    fn answers(&self, node: &str) -> bool {
        let Ok(c) = self.cluster.lock().expect("cluster").client(node) else {
            return false;
        };
        crate::procs::wait_until(Duration::from_secs(10), "the agent answers", || {
            c.get::<IgnoredAny>("/v1/members").is_ok()
        })
        .is_ok()
    }

    /// Continues every agent and resolves every partition left.
    fn heal_all(&mut self) {
        let c = self.cluster.lock().expect("cluster");
        for n in std::mem::take(&mut self.paused) {
            let _ = c.signal(&n, Signal::SIGCONT);
        }
        let clients: Vec<_> = c.names().iter().filter_map(|n| c.client(n).ok()).collect();
        drop(c);
        for cl in clients {
            for p in cl
                .get::<Vec<PartitionView>>("/v1/partitions")
                .unwrap_or_default()
            {
                let _ = cl.delete::<IgnoredAny>(&format!("/v1/partitions/{}", p.reference));
            }
        }
    }
}

/// For each agent, the peers a set of cuts cuts it from (both sides of every cut).
fn by_agent(cuts: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (a, b) in cuts {
        by.entry(a.clone()).or_default().push(b.clone());
        by.entry(b.clone()).or_default().push(a.clone());
    }
    by
}
