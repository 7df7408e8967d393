//! The discovery task: feeds the sans-IO [`ensemble_proto::discovery::Discovery`] with backend
//! results, probe results and membership events, and carries out its outputs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ensemble_proto::discovery::{
    Discovery as Core, Input, Output, Phase, SystemInfo, PAST_STARTUP, PHASE_TAG,
};
use ensemble_proto::{EventKind, Member};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::{probe::probe, Backend, Cmd, DiscoveryError, DiscoveryOptions};
use crate::node::Node;

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn empty_info(backend: &str) -> SystemInfo {
    let mut info = Core::new(Default::default(), Instant::now(), unix_ms()).system_info();
    info.backend = backend.to_owned();
    info
}

fn past_startup(m: &Member) -> bool {
    m.status.is_up() && m.tags.get(PHASE_TAG) == Some(PAST_STARTUP)
}

pub(crate) async fn run(
    node: Node,
    backend: Arc<dyn Backend>,
    options: DiscoveryOptions,
    mut cmds: mpsc::Receiver<(Cmd, oneshot::Sender<()>)>,
    info: watch::Sender<SystemInfo>,
) {
    let mut core = Core::new(options.schedule.clone(), Instant::now(), unix_ms());
    let (done_tx, mut done) = mpsc::unbounded_channel::<Input>();
    let mut events = node.events();
    // Incarnations start at the member's clock: its start time.
    let mut started: BTreeMap<String, u64> = BTreeMap::new();
    for m in node.members() {
        if m.name == node.name() {
            continue;
        }
        started.insert(m.name.clone(), m.incarnation);
        if m.status.is_up() {
            core.handle(
                Instant::now(),
                Input::MemberUp {
                    name: m.name.clone(),
                    addr: m.addr,
                },
            );
        }
        if past_startup(&m) {
            core.handle(Instant::now(), Input::PeerPastStartup);
        }
    }
    let mut last_result: Option<String> = None;
    let mut get_nodes_ended = 0;
    // Callers answered once the snapshot shows their command.
    let mut replies: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        while let Some(out) = core.poll_output() {
            carry_out(&node, &backend, &options, &done_tx, out);
        }
        let mut snapshot = core.system_info();
        snapshot.backend = backend.name().to_owned();
        snapshot.node_num = backend.node_num();
        snapshot.node_start_timestamps = snapshot
            .connected_nodes
            .iter()
            .filter_map(|n| started.get(n).map(|t| (n.clone(), *t)))
            .collect();
        if snapshot.last_get_nodes_result != last_result {
            match &snapshot.last_get_nodes_result {
                // The first success is routine; one after a failure is news.
                Some(r) if r == "ok" && last_result.is_none() => {
                    debug!("discovery: get_nodes succeeded")
                }
                Some(r) if r == "ok" => info!("discovery: get_nodes succeeded again"),
                Some(e) => warn!("discovery: get_nodes failed, retrying after_error: {e}"),
                None => {}
            }
            last_result = snapshot.last_get_nodes_result.clone();
        }
        crate::metrics::discovery(&snapshot, snapshot.get_nodes_count - get_nodes_ended);
        get_nodes_ended = snapshot.get_nodes_count;
        info.send_replace(snapshot);
        for r in replies.drain(..) {
            let _ = r.send(());
        }
        let deadline = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            cmd = cmds.recv() => {
                let Some((cmd, reply)) = cmd else { break };
                let input = match cmd {
                    Cmd::AddTable(t) => Input::AddTable(t),
                    Cmd::DeleteTable(t) => Input::DeleteTable(t),
                    Cmd::GetNodes => Input::GetNodes,
                };
                core.handle(Instant::now(), input);
                replies.push(reply);
            }
            Some(input) = done.recv() => {
                if let Input::ProbeDone { addr, result } = &input {
                    debug!("discovery: probe of {addr}: {result:?}");
                }
                core.handle(Instant::now(), input);
            }
            event = events.next() => {
                let Some(e) = event else { break };
                started.insert(e.member.name.clone(), e.member.incarnation);
                let input = match e.kind {
                    EventKind::Up | EventKind::Updated if e.member.status.is_up() => {
                        if past_startup(&e.member) {
                            core.handle(Instant::now(), Input::PeerPastStartup);
                        }
                        Input::MemberUp { name: e.member.name.clone(), addr: e.member.addr }
                    }
                    EventKind::Left => Input::MemberLeft { name: e.member.name.clone() },
                    EventKind::Down => Input::MemberDown { name: e.member.name.clone() },
                    _ => Input::Tick,
                };
                core.handle(Instant::now(), input);
            }
            _ = tokio::time::sleep_until(deadline) => core.handle(Instant::now(), Input::Tick),
        }
    }
    debug!("discovery of {} stopped", node.name());
}

fn carry_out(
    node: &Node,
    backend: &Arc<dyn Backend>,
    options: &DiscoveryOptions,
    done: &mpsc::UnboundedSender<Input>,
    out: Output,
) {
    let done = done.clone();
    match out {
        Output::GetNodes => {
            let backend = backend.clone();
            let limit = options.get_nodes_timeout;
            tokio::spawn(async move {
                let result = match tokio::time::timeout(limit, backend.get_nodes()).await {
                    Ok(r) => r,
                    Err(_) => Err(DiscoveryError::Timeout(limit)),
                };
                let _ = done.send(Input::GetNodesDone(result.map_err(|e| e.to_string())));
            });
        }
        Output::Probe { addr } => {
            let node = node.clone();
            let (limit, join_limit) = (options.probe_timeout, options.join_timeout);
            tokio::spawn(async move {
                let result = probe(&node, &addr, limit, join_limit).await;
                let _ = done.send(Input::ProbeDone { addr, result });
            });
        }
        Output::JoinTable { node: peer, table } => {
            let joiner = options.table_joiner.clone();
            tokio::spawn(async move {
                let result = match joiner {
                    Some(j) => j(peer.clone(), table.clone()).await,
                    None => Ok(()),
                };
                let _ = done.send(Input::TableJoined {
                    node: peer,
                    table,
                    result,
                });
            });
        }
        Output::PhaseChanged(Phase::Regular) => {
            info!("discovery: past the startup phase");
            let node = node.clone();
            tokio::spawn(async move {
                let mut tags: BTreeMap<String, String> = node.local_member().tags.as_map().clone();
                tags.insert(PHASE_TAG.to_owned(), PAST_STARTUP.to_owned());
                if let Err(e) = node.set_tags(tags).await {
                    warn!("discovery: cannot publish the phase tag: {e}");
                }
            });
        }
        Output::PhaseChanged(Phase::Initial) => {}
    }
}
