//! The driver: one task that owns the sans-IO core and carries out its outputs.
//!
//! Connection tasks (their [`TransportEvent`]s) and the public API (its [`Command`]s) send
//! [`DriverMsg`]s; the driver feeds them to the core ([`Stack`]) with the current time, then
//! turns the core's outputs into frames on connections, dial tasks and events, and publishes
//! the member list.
//!
//! This module holds the loop and the dispatch of inputs and outputs. The rest has a module
//! each: `conns` (the connection table, which connection wins, sending and shedding), `faults`
//! (fault injection), `secret_watch` (a node alone because no peer takes its key says so), and
//! each capability's commands and outputs (`membership`, `broadcast`, `messaging`, `tables`,
//! `singletons`, `keys`, `queries`; `broadcast_info`: introspection of other members).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_proto::stack::{Input, Output};
use ensemble_proto::table;
use ensemble_proto::wire::PeerInfo;
use ensemble_proto::{Member, MemberEvent, Stack};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::warn;

use crate::command::{ChangeBatch, Command, DownHook, DriverMsg, Envelope};
use crate::error::Error;
use crate::transport::accept;
use crate::transport::conn::{self, Shared};
use crate::transport::outbox::Outbox;
use crate::transport::TransportEvent;

mod broadcast;
mod broadcast_info;
mod conns;
mod faults;
mod keys;
mod membership;
mod messaging;
mod metrics;
mod queries;
mod secret_watch;
mod singletons;
mod tables;

pub(crate) use faults::{Gate, Partitions};

/// What the driver publishes for the [`crate::Node`] handle.
pub(crate) struct Published {
    /// The view's member versions, shared (copied and sorted only when someone reads them).
    pub members: watch::Sender<Arc<Vec<Arc<Member>>>>,
    /// The last suspicion of each member (published before the members).
    pub accusations: watch::Sender<Arc<crate::command::AccusationMap>>,
    pub events: tokio::sync::broadcast::Sender<MemberEvent>,
    pub me: watch::Sender<PeerInfo>,
    pub partitions: watch::Sender<Partitions>,
    /// Connections opened and closed, as membership keeps them.
    pub connections: tokio::sync::broadcast::Sender<crate::command::ConnectionEvent>,
    /// Table joins this node coordinated.
    pub table_joins: tokio::sync::broadcast::Sender<crate::command::TableJoinEvent>,
}

pub(crate) struct Driver {
    core: Stack,
    inbox: mpsc::Receiver<DriverMsg>,
    shared: Arc<Shared<DriverMsg>>,
    published: Published,
    conns: HashMap<String, conns::Active>,
    /// Write sides holding frames sealed by this round's outputs.
    held: Vec<Arc<Outbox>>,
    /// Fault injection: the partitions in force.
    faults: faults::Faults,
    join_waiters: HashMap<SocketAddr, Vec<oneshot::Sender<Result<String, Error>>>>,
    tasks: JoinSet<()>,
    published_version: u64,
    /// Membership's connections version last published, and those connections (name and
    /// the incarnation each was opened with).
    published_conns: (Option<u64>, std::collections::BTreeMap<String, u64>),
    dropped_frames: u64,
    /// Lazy broadcast frames (announcements) shed because a peer's send queue was filling.
    shed_frames: u64,
    /// Connections that closed, for any reason (published in [`crate::BroadcastStatus`]).
    connections_closed: u64,
    /// Named handlers' mailboxes.
    mailboxes: HashMap<String, mpsc::Sender<Envelope>>,
    /// Callers waiting for an acknowledgement, by token: (member, name, timeout, reply).
    ack_waiters: HashMap<u64, messaging::AckWaiter>,
    /// The last token given to a command (tokens match the core's answers to callers).
    last_token: u64,
    /// Table callers waiting for a completion, by token.
    table_waiters: HashMap<u64, tables::TableWaiter>,
    /// Broadcast callers waiting for the answer that comes out of their command.
    broadcast_waiters: HashMap<u64, broadcast::BroadcastWaiter>,
    /// Singleton registrations waiting for their answer.
    singleton_waiters: HashMap<u64, singletons::SingletonWaiter>,
    /// Key operations gathering the other nodes' answers, by request id.
    key_ops: HashMap<u64, mpsc::Sender<(String, keys::Answer)>>,
    /// Where each handler's custom exchanges go ([`crate::Node::custom_exchanges`]).
    exchange_runners: HashMap<String, mpsc::Sender<crate::command::ExchangeRequest>>,
    /// Broadcast introspection requests gathering the other nodes' answers, by request id.
    info_ops: HashMap<u64, broadcast_info::InfoAnswers>,
    /// Change subscriptions per table.
    table_changes: HashMap<String, tokio::sync::broadcast::Sender<ChangeBatch>>,
    /// `handle_down` hooks per table.
    table_down_hooks: HashMap<String, Vec<DownHook>>,
    /// The task running each singleton's handler: where its events go, what it exposes.
    singleton_tasks: HashMap<String, crate::command::SingletonTask>,
    /// Random per process start, announced in handshakes.
    instance: u64,
    /// Addresses this node answers on (advertised and bound): joining them is an error.
    own_addrs: Vec<SocketAddr>,
    /// How long to poll for a reply a caller waits for ([`crate::Config::busy_wait`]).
    busy_wait: Duration,
    /// Membership's metrics, from the view as last published.
    membership_metrics: crate::metrics::MembershipMetrics,
    /// When the gauges read from the connections and the broadcast machine were last set.
    gauges_at: Option<Instant>,
    /// Whether this node is alone because no peer takes its key.
    secret_watch: secret_watch::SecretWatch,
    /// Queries started here and the query handlers.
    queries: queries::QueryRoutes,
}

/// How long a leaving node waits for its goodbye to be written.
const LEAVE_FLUSH: Duration = Duration::from_secs(2);

/// When the core asks for no timer (it always has one: membership's): look again after this.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The node stops: gracefully (leave: the goodbye is written first) or not, and `reply` is
/// told once it has.
pub(super) struct Stop {
    pub graceful: bool,
    pub reply: oneshot::Sender<()>,
}

impl Driver {
    pub fn new(
        core: Stack,
        inbox: mpsc::Receiver<DriverMsg>,
        shared: Arc<Shared<DriverMsg>>,
        published: Published,
        instance: u64,
        own_addrs: Vec<SocketAddr>,
        busy_wait: Duration,
    ) -> Self {
        let published_version = core.membership().view_version();
        Driver {
            instance,
            own_addrs,
            busy_wait,
            secret_watch: secret_watch::SecretWatch::new(Duration::from_secs(30)),
            core,
            inbox,
            shared,
            published,
            conns: HashMap::new(),
            held: Vec::new(),
            faults: faults::Faults::new(),
            join_waiters: HashMap::new(),
            tasks: JoinSet::new(),
            // Node::start published the initial view already.
            published_version,
            published_conns: (None, Default::default()),
            dropped_frames: 0,
            shed_frames: 0,
            connections_closed: 0,
            mailboxes: HashMap::new(),
            ack_waiters: HashMap::new(),
            last_token: 0,
            table_waiters: HashMap::new(),
            broadcast_waiters: HashMap::new(),
            singleton_waiters: HashMap::new(),
            key_ops: HashMap::new(),
            info_ops: HashMap::new(),
            exchange_runners: HashMap::new(),
            table_changes: HashMap::new(),
            table_down_hooks: HashMap::new(),
            singleton_tasks: HashMap::new(),
            membership_metrics: Default::default(),
            gauges_at: None,
            queries: Default::default(),
        }
    }

    /// Runs until shutdown; `listener` is the accept loop's task.
    pub async fn run(mut self, listener: tokio::net::TcpListener) {
        let accept = tokio::spawn(accept::accept_loop(self.shared.clone(), listener));
        self.serve_keys(Instant::now());
        self.serve_broadcast_info(Instant::now());
        self.drain_outputs();
        self.publish();
        loop {
            let next_tick =
                (self.core.poll_timeout()).unwrap_or_else(|| Instant::now() + IDLE_TICK);
            let next_tick = self
                .faults
                .next_expiry()
                .map_or(next_tick, |e| e.min(next_tick));
            let deadline = tokio::time::Instant::from_std(next_tick);
            let msg = match self.busy_wait(next_tick).await {
                Some(msg) => Some(msg),
                None => tokio::select! {
                    msg = self.inbox.recv() => msg,
                    _ = tokio::time::sleep_until(deadline) => {
                        self.expire_partitions(Instant::now());
                        self.core.handle(Instant::now(), Input::Tick);
                        self.watch_secret(Instant::now());
                        self.drain_outputs();
                        self.publish();
                        self.record_gauges(Instant::now());
                        continue;
                    }
                },
            };
            if self.core.membership().is_removed() {
                warn!("another member removed this node from the cluster: stopping");
                accept.abort();
                self.stop(true).await;
                return;
            }
            let Some(msg) = msg else { break };
            let mut stop = self.on_msg(msg);
            // Take whatever else is waiting before carrying out the outputs.
            for _ in 0..64 {
                if stop.is_some() {
                    break;
                }
                match self.inbox.try_recv() {
                    Ok(m) => stop = self.on_msg(m),
                    Err(_) => break,
                }
            }
            self.drain_outputs();
            self.publish();
            self.settle().await;
            if let Some(Stop { graceful, reply }) = stop {
                accept.abort();
                self.stop(graceful).await;
                let _ = reply.send(());
                return;
            }
        }
        accept.abort();
        self.stop(false).await;
    }

    /// While a caller waits for a peer's reply, polls the inbox for up to
    /// [`crate::Config::busy_wait`] (never past `next_tick`) instead of sleeping: a reply that
    /// comes back within it does not pay for waking a sleeping thread. Yielding between polls
    /// lets this worker run the connection tasks and poll the sockets.
    async fn busy_wait(&mut self, next_tick: Instant) -> Option<DriverMsg> {
        let waiting = !(self.table_waiters.is_empty() && self.ack_waiters.is_empty());
        let until = poll_until(Instant::now(), self.busy_wait, waiting, next_tick)?;
        loop {
            if let Ok(msg) = self.inbox.try_recv() {
                return Some(msg);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Applies here the table writes made here whose sends just went to the connections: after
    /// a yield, so that the connection tasks this worker woke seal and write them first and the
    /// peers apply them while this node does.
    async fn settle(&mut self) {
        if !self.core.tables().unsettled() {
            return;
        }
        tokio::task::yield_now().await;
        let now = Instant::now();
        self.core.handle(now, Input::Table(table::Input::Settle));
        self.drain_outputs();
    }

    /// Handles one message; returns Some when the node must stop (graceful or not).
    fn on_msg(&mut self, msg: DriverMsg) -> Option<Stop> {
        let now = Instant::now();
        match msg {
            DriverMsg::Transport(TransportEvent::ConnUp { conn, peer, dialed }) => {
                self.on_conn_up(now, conn, peer, dialed)
            }
            DriverMsg::Transport(TransportEvent::ConnDown { id, name }) => {
                self.connections_closed += 1;
                self.on_conn_down(now, id, name)
            }
            DriverMsg::Transport(TransportEvent::Inbound { from, msg }) => {
                // Unless fault injection cuts the sender, or a relayed message's origin, off.
                if !self.faults.drops_inbound(&from, &msg) {
                    self.core.handle(now, Input::Message { from, msg });
                }
            }
            DriverMsg::Transport(TransportEvent::DialFailed { addr, error }) => {
                self.secret_watch.dial_failed(addr, error.refusal());
                self.on_dial_failed(now, addr, error.to_string(), error.no_listener());
                self.watch_secret(now);
            }
            DriverMsg::Command(c) => return self.on_command(now, c),
        }
        None
    }

    fn on_command(&mut self, now: Instant, c: Command) -> Option<Stop> {
        match c {
            Command::Membership(c) => return self.on_membership_command(now, c),
            Command::Faults(c) => self.on_fault_command(c),
            Command::Broadcast(c) => self.on_broadcast_command(now, c),
            Command::Messaging(c) => self.on_messaging_command(now, c),
            Command::Table(c) => self.on_table_command(now, c),
            Command::Singleton(c) => self.on_singleton_command(now, c),
            Command::Keys(c) => self.on_key_command(now, c),
            Command::Query(c) => self.on_query_command(now, c),
        }
        None
    }

    fn drain_outputs(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    if !self.oversized(&to, &msg) {
                        self.send(to, msg)
                    }
                }
                Output::Dial { addr } => {
                    self.tasks.spawn(conn::dial(self.shared.clone(), addr));
                }
                Output::Disconnect { name } => {
                    // Dropping the sender closes the connection once its queue is written.
                    self.conns.remove(&name);
                }
                Output::Broadcast(b) => self.on_broadcast_output(b),
                Output::Messaging(m) => self.on_messaging(m),
                Output::Table(t) => self.on_table(t),
                Output::Singleton(s) => self.on_singleton_output(s),
                Output::Event(e) => self.on_member_event(e),
                Output::Query(q) => self.on_query_output(q),
            }
        }
        for outbox in self.held.drain(..) {
            outbox.write_held();
        }
        // Reap finished tasks so the set does not grow without bound.
        while self.tasks.try_join_next().is_some() {}
    }

    /// A token for a command whose answer comes out of the core.
    fn next_token(&mut self) -> u64 {
        self.last_token += 1;
        self.last_token
    }

    async fn stop(&mut self, graceful: bool) {
        // Every way of stopping (leave, shutdown, removed by another member, every handle
        // dropped) ends the singletons here: leaders step down and hand over.
        self.stop_singletons(Instant::now());
        if graceful {
            // Wait until the goodbye has left every send queue.
            let deadline = tokio::time::Instant::now() + LEAVE_FLUSH;
            while tokio::time::Instant::now() < deadline
                && self.conns.values().any(|a| !a.outbox.is_idle())
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Dropping the senders lets every connection write what it holds and close.
        self.conns.clear();
        self.inbox.close();
        // Give connection tasks a moment to flush, then stop everything.
        let flush = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_millis(500), flush).await;
        self.tasks.abort_all();
    }
}

/// Until when the driver polls instead of sleeping: only while a caller waits for a reply,
/// at most `busy_wait`, never past the next tick; None: it sleeps at once.
fn poll_until(
    now: Instant,
    busy_wait: Duration,
    waiting: bool,
    next_tick: Instant,
) -> Option<Instant> {
    (waiting && !busy_wait.is_zero()).then(|| (now + busy_wait).min(next_tick))
}

#[cfg(test)]
mod send_queue;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_polls_only_while_a_caller_waits_and_never_past_its_next_tick() {
        let now = Instant::now();
        let (us30, far) = (Duration::from_micros(30), now + Duration::from_secs(1));
        assert_eq!(poll_until(now, us30, true, far), Some(now + us30));
        assert_eq!(poll_until(now, us30, false, far), None, "nobody waits");
        assert_eq!(
            poll_until(now, Duration::ZERO, true, far),
            None,
            "turned off"
        );
        let soon = now + Duration::from_micros(5);
        assert_eq!(
            poll_until(now, us30, true, soon),
            Some(soon),
            "a tick is due"
        );
    }
}
