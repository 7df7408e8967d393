//! The driver: one task that owns the sans-IO core and carries out its outputs.
//!
//! Connection tasks and the public API send [`DriverMsg`]s; the driver feeds them to
//! [`Membership`] with the current time, then turns the core's outputs into frames on
//! connections, dial tasks and events, and publishes the member list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_proto::broadcast::Plumtree;
use ensemble_proto::messaging::{self, Failure};
use ensemble_proto::wire::{Message, PeerInfo};
use ensemble_proto::{Input, Member, MemberEvent, Stack, StackOutput};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::command::{
    BroadcastStatus, ChangeBatch, Command, Done, DownHook, DriverMsg, Envelope, Outgoing,
    MAILBOX_CAPACITY,
};
use crate::error::Error;
use crate::transport::conn::{self, ConnHandle, Shared};
use crate::transport::outbox::{Hold, Outbox};

mod singletons;
mod tables;

/// What the driver publishes for the [`crate::Node`] handle.
pub(crate) struct Published {
    /// The view's member versions, shared (copied and sorted only when someone reads them).
    pub members: watch::Sender<Arc<Vec<Arc<Member>>>>,
    pub events: broadcast::Sender<MemberEvent>,
    pub me: watch::Sender<PeerInfo>,
    pub partitions: watch::Sender<BTreeMap<u64, BTreeSet<String>>>,
}

struct Active {
    id: u64,
    dialer: String,
    /// The peer as it announced itself in the handshake.
    peer: PeerInfo,
    /// Send queues, one per channel (see `transport::conn::Lanes`).
    lanes: Vec<mpsc::Sender<Message>>,
    /// The connection's write side, for small messages written at once.
    outbox: Arc<Outbox>,
}

pub(crate) struct Driver {
    core: Stack,
    inbox: mpsc::Receiver<DriverMsg>,
    shared: Arc<Shared>,
    published: Published,
    conns: HashMap<String, Active>,
    /// Write sides holding frames sealed by this round's outputs.
    held: Vec<Arc<Outbox>>,
    partitions: BTreeMap<u64, BTreeSet<String>>,
    next_partition: u64,
    join_waiters: HashMap<SocketAddr, Vec<oneshot::Sender<Result<String, Error>>>>,
    tasks: JoinSet<()>,
    published_version: u64,
    dropped_frames: u64,
    /// Lazy broadcast frames (announcements) shed because a peer's send queue was filling.
    shed_frames: u64,
    /// Named handlers' mailboxes.
    mailboxes: HashMap<String, mpsc::Sender<Envelope>>,
    /// Callers waiting for an acknowledgement, by token: (member, name, timeout, reply).
    ack_waiters: HashMap<u64, AckWaiter>,
    next_token: u64,
    /// Table callers waiting for a completion, by token.
    table_waiters: HashMap<u64, Done>,
    /// Change subscriptions per table.
    table_changes: HashMap<String, broadcast::Sender<ChangeBatch>>,
    /// `handle_down` hooks per table.
    table_down_hooks: HashMap<String, Vec<DownHook>>,
    /// Where each singleton's events go (the task running its handler).
    singleton_events: HashMap<
        String,
        tokio::sync::mpsc::UnboundedSender<ensemble_proto::singleton::SingletonEvent>,
    >,
    /// Random per process start, announced in handshakes.
    instance: u64,
    /// Addresses this node answers on (advertised and bound): joining them is an error.
    own_addrs: Vec<SocketAddr>,
    /// How long to poll for a reply a caller waits for ([`crate::Config::busy_wait`]).
    busy_wait: Duration,
}

struct AckWaiter {
    to: String,
    name: String,
    timeout: Duration,
    /// None for a cast that waits for its connection: its failure is logged.
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

/// How long a cast to a member that is up but not connected yet waits for the connection.
const CAST_WAIT: Duration = Duration::from_secs(5);

/// How long a leaving node waits for its goodbye to be written.
const LEAVE_FLUSH: Duration = Duration::from_secs(2);

impl Driver {
    pub fn new(
        core: Stack,
        inbox: mpsc::Receiver<DriverMsg>,
        shared: Arc<Shared>,
        published: Published,
        instance: u64,
        own_addrs: Vec<SocketAddr>,
        busy_wait: Duration,
    ) -> Self {
        let published_version = core.membership.view_version();
        Driver {
            instance,
            own_addrs,
            busy_wait,
            core,
            inbox,
            shared,
            published,
            conns: HashMap::new(),
            held: Vec::new(),
            partitions: BTreeMap::new(),
            next_partition: 1,
            join_waiters: HashMap::new(),
            tasks: JoinSet::new(),
            // Node::start published the initial view already.
            published_version,
            dropped_frames: 0,
            shed_frames: 0,
            mailboxes: HashMap::new(),
            ack_waiters: HashMap::new(),
            next_token: 1,
            table_waiters: HashMap::new(),
            table_changes: HashMap::new(),
            table_down_hooks: HashMap::new(),
            singleton_events: HashMap::new(),
        }
    }

    /// Runs until shutdown; `listener` is the accept loop's task.
    pub async fn run(mut self, listener: tokio::net::TcpListener) {
        let accept = tokio::spawn(conn::accept_loop(self.shared.clone(), listener));
        self.drain_outputs();
        self.publish();
        loop {
            let next_tick = self.core.poll_timeout();
            let deadline = tokio::time::Instant::from_std(next_tick);
            let msg = match self.busy_wait(next_tick).await {
                Some(msg) => Some(msg),
                None => tokio::select! {
                    msg = self.inbox.recv() => msg,
                    _ = tokio::time::sleep_until(deadline) => {
                        self.core.handle(Instant::now(), Input::Tick);
                        self.drain_outputs();
                        self.publish();
                        continue;
                    }
                },
            };
            if self.core.membership.is_removed() {
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
            if let Some((graceful, reply)) = stop {
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
        if !self.core.tables.unsettled() {
            return;
        }
        tokio::task::yield_now().await;
        let now = Instant::now();
        self.core.with_tables(now, |t| t.settle(now));
        self.drain_outputs();
    }

    /// The connection tasks drop handshakes from partitioned names.
    fn share_partitions(&self) {
        let all = self.partitions.values().flatten().cloned().collect();
        *self
            .shared
            .partitioned
            .write()
            .unwrap_or_else(|e| e.into_inner()) = all;
    }

    fn partitioned(&self, name: &str) -> bool {
        self.partitions.values().any(|p| p.contains(name))
    }

    /// Handles one message; returns Some when the node must stop (graceful or not).
    fn on_msg(&mut self, msg: DriverMsg) -> Option<(bool, oneshot::Sender<()>)> {
        let now = Instant::now();
        match msg {
            DriverMsg::ConnUp { conn, peer, dialed } => self.on_conn_up(now, conn, peer, dialed),
            DriverMsg::ConnDown { id, name } => {
                if self.conns.get(&name).is_some_and(|a| a.id == id) {
                    self.conns.remove(&name);
                    self.core.handle(now, Input::Disconnected { name });
                }
            }
            DriverMsg::Inbound { from, msg } => {
                // A relayed message from a node partitioned away is dropped like a direct one.
                let origin = match &msg {
                    Message::Relay(r) => self.partitioned(&r.from),
                    _ => false,
                };
                if !self.partitioned(&from) && !origin {
                    self.core.handle_message(now, from, msg);
                }
            }
            DriverMsg::DialFailed {
                addr,
                reason,
                no_listener,
            } => {
                for w in self.join_waiters.remove(&addr).unwrap_or_default() {
                    let _ = w.send(Err(Error::Join {
                        addr,
                        reason: reason.clone(),
                    }));
                }
                self.core.handle(now, Input::DialFailed { addr });
                if no_listener {
                    self.core.no_listener(now, addr);
                }
            }
            DriverMsg::Command(c) => return self.on_command(now, c),
        }
        None
    }

    fn on_command(&mut self, now: Instant, c: Command) -> Option<(bool, oneshot::Sender<()>)> {
        match c {
            Command::Join { addr, reply } => {
                if self.own_addrs.contains(&addr) {
                    let reason = "that is this node's own address".to_string();
                    let _ = reply.send(Err(Error::Join { addr, reason }));
                    return None;
                }
                // Dial directly, whatever the core's dial schedule: the caller waits for this
                // result. The core counts it as its dial to the address (no second one).
                let waiters = self.join_waiters.entry(addr).or_default();
                waiters.retain(|w| !w.is_closed());
                waiters.push(reply);
                self.tasks.spawn(conn::dial(self.shared.clone(), addr));
                self.core.handle(now, Input::Join { addr });
            }
            Command::SetTags { tags, reply } => {
                self.core.handle(now, Input::SetTags(tags));
                let _ = reply.send(());
            }
            Command::Leave { reply } => {
                self.stop_singletons(now);
                self.core.handle(now, Input::Leave);
                return Some((true, reply));
            }
            Command::Remove { name, reply } if name == self.core.membership.local().name => {
                let msg = "remove() names this node itself; call leave() instead";
                let _ = reply.send(Err(Error::Config(msg.into())));
            }
            Command::Remove { name, reply } => {
                let known = self
                    .core
                    .membership
                    .member(&name)
                    .is_some_and(|m| m.status != ensemble_proto::Status::Left);
                if known {
                    info!("removing {name} from the cluster");
                    self.core.handle(now, Input::Remove(name));
                    let _ = reply.send(Ok(()));
                } else {
                    let _ = reply.send(Err(Error::UnknownNode(name)));
                }
            }
            Command::Shutdown { reply } => {
                self.stop_singletons(now);
                return Some((false, reply));
            }
            Command::InjectPartition { names, reply } => {
                let id = self.next_partition;
                self.next_partition += 1;
                info!("fault injection: dropping all traffic with {names:?} (partition {id})");
                self.partitions.insert(id, names);
                self.published
                    .partitions
                    .send_replace(self.partitions.clone());
                self.share_partitions();
                let _ = reply.send(id);
            }
            Command::ResolvePartition { id, reply } => {
                let result = match self.partitions.remove(&id) {
                    Some(names) => {
                        info!("fault injection: partition {id} with {names:?} resolved");
                        self.published
                            .partitions
                            .send_replace(self.partitions.clone());
                        self.share_partitions();
                        Ok(())
                    }
                    None => Err(Error::UnknownPartition(id)),
                };
                let _ = reply.send(result);
            }
            Command::Broadcast {
                handler,
                msg,
                reply,
            } => {
                let _ = reply.send(self.core.broadcast(now, &handler, msg));
            }
            Command::Register {
                name,
                handler,
                reply,
            } => {
                let _ = reply.send(self.core.broadcast.register(&name, handler));
            }
            Command::BroadcastStatus { root, reply } => {
                let me = &self.core.membership.local().name;
                let mut members: Vec<String> = (self.core.membership.members())
                    .filter(|m| m.status.is_up() && m.name != *me)
                    .map(|m| m.name.clone())
                    .collect();
                members.sort();
                let status = BroadcastStatus::of(
                    &self.core.broadcast,
                    members,
                    root.as_deref(),
                    self.shed_frames,
                    self.dropped_frames,
                );
                let _ = reply.send(status);
            }
            Command::CancelExchanges { selector, reply } => {
                let _ = reply.send(self.core.broadcast.cancel_exchanges(&selector));
            }
            Command::RegisterName { name, tx, reply } => {
                let result = if self.mailboxes.get(&name).is_some_and(|m| !m.is_closed()) {
                    Err(Error::DuplicateName(name))
                } else {
                    self.mailboxes.insert(name.clone(), tx);
                    self.core
                        .handle_messaging(now, messaging::Input::Register(name));
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::UnregisterName { name } => {
                if self.mailboxes.get(&name).is_some_and(|m| m.is_closed()) {
                    self.mailboxes.remove(&name);
                    self.core
                        .handle_messaging(now, messaging::Input::Unregister(name));
                }
            }
            Command::Cast(out) => {
                // The caller returned already: a refusal (partitioned away meanwhile) is logged.
                let (tx, mut rx) = oneshot::channel();
                self.send_direct(now, out, None, tx);
                if let Ok(Err(e)) = rx.try_recv() {
                    warn!("a message cast was not sent: {e}");
                }
            }
            Command::SendDirect { out, ack, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.send_direct(now, out, ack, tx);
            }
            Command::Table(c) => self.on_table_command(now, c),
            Command::Singleton(c) => self.on_singleton_command(now, c),
        }
        None
    }

    fn send_direct(
        &mut self,
        now: Instant,
        out: Outgoing,
        ack: Option<Duration>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        let Outgoing {
            to,
            name,
            payload,
            channel,
        } = out;
        let up = self
            .core
            .membership
            .member(&to)
            .is_some_and(|m| m.status.is_up());
        let me = self.core.membership.local().name.clone();
        if to == me {
            // To this node itself: straight to the mailbox.
            let result = match self.mailboxes.get(&name).filter(|m| !m.is_closed()) {
                Some(mb) => {
                    let e = Envelope {
                        from: me,
                        name,
                        payload,
                    };
                    let _ = mb.try_send(e);
                    Ok(())
                }
                None => Err(Error::UnknownName { node: me, name }),
            };
            let _ = reply.send(result);
            return;
        }
        if !up || self.partitioned(&to) {
            let _ = reply.send(Err(Error::UnknownNode(to)));
            return;
        }
        // Connected, or reachable through a relay (client-server).
        let routable = self.conns.contains_key(&to)
            || self
                .core
                .route(&to)
                .is_some_and(|hop| self.conns.contains_key(hop));
        let (timeout, reply) = match ack {
            Some(timeout) => (timeout, Some(reply)),
            // A cast to a member not connected yet (it just joined) waits for the connection
            // like an acknowledged message, and a failure is logged instead of returned.
            None if !routable => {
                let _ = reply.send(Ok(()));
                (CAST_WAIT, None)
            }
            None => {
                // Handed to the connection's queue: done, as far as a cast goes.
                let _ = reply.send(Ok(()));
                let input = messaging::Input::Send {
                    to,
                    name,
                    payload,
                    ack: None,
                    channel,
                };
                self.core.handle_messaging(now, input);
                return;
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let waiter = AckWaiter {
            to: to.clone(),
            name: name.clone(),
            timeout,
            reply,
        };
        self.ack_waiters.insert(token, waiter);
        let ack = Some((token, crate::time::deadline(now, timeout)));
        let input = messaging::Input::Send {
            to,
            name,
            payload,
            ack,
            channel,
        };
        self.core.handle_messaging(now, input);
    }

    fn on_messaging(&mut self, out: messaging::Output) {
        match out {
            messaging::Output::Deliver {
                from,
                name,
                payload,
            } => {
                let Some(mb) = self.mailboxes.get(&name) else {
                    return;
                };
                let e = Envelope {
                    from,
                    name: name.clone(),
                    payload,
                };
                if let Err(TrySendError::Full(_)) = mb.try_send(e) {
                    warn!(
                        "mailbox {name:?} is full ({} messages); message dropped",
                        MAILBOX_CAPACITY
                    );
                }
            }
            messaging::Output::Acked(token) => {
                if let Some(reply) = self.ack_waiters.remove(&token).and_then(|w| w.reply) {
                    let _ = reply.send(Ok(()));
                }
            }
            messaging::Output::Failed(token, failure) => {
                if let Some(w) = self.ack_waiters.remove(&token) {
                    let err = match failure {
                        Failure::UnknownName(name) => Error::UnknownName { node: w.to, name },
                        Failure::Timeout => Error::Timeout {
                            node: w.to,
                            name: w.name,
                            after: w.timeout,
                        },
                    };
                    match w.reply {
                        Some(reply) => {
                            let _ = reply.send(Err(err));
                        }
                        None => warn!("a message cast earlier was not delivered: {err}"),
                    }
                }
            }
            messaging::Output::CastRejected { node, name } => {
                warn!("a message cast to {name:?} on {node} was dropped there: no handler has that name");
            }
            messaging::Output::Send { .. } => unreachable!("the stack turns sends into frames"),
        }
    }

    fn on_conn_up(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        peer: PeerInfo,
        dialed: Option<SocketAddr>,
    ) {
        if self.partitioned(&peer.name) {
            // Dropping the handle closes the connection.
            if let Some(addr) = dialed {
                let reason = format!("{} is partitioned away (fault injection)", peer.name);
                self.on_msg(DriverMsg::DialFailed {
                    addr,
                    reason,
                    no_listener: false,
                });
            }
            return;
        }
        if let Some(addr) = dialed {
            for w in self.join_waiters.remove(&addr).unwrap_or_default() {
                let _ = w.send(Ok(peer.name.clone()));
            }
        }
        let keep_new = match self.conns.get(&peer.name) {
            None => true,
            // Another process under the same name: a restart, newer by its start time.
            Some(old) if peer.instance != old.peer.instance => {
                peer.incarnation >= old.peer.incarnation
            }
            // Two connections to the same process (both dialled at once): both sides keep the
            // one dialled by the smaller name, so they agree without talking.
            Some(old) => conn.dialer < old.dialer,
        };
        if keep_new {
            let active = Active {
                id: conn.id,
                dialer: conn.dialer,
                peer: peer.clone(),
                lanes: conn.lanes,
                outbox: conn.outbox,
            };
            self.conns.insert(peer.name.clone(), active);
        }
        let peer = match (keep_new, self.conns.get(&peer.name)) {
            (false, Some(a)) => a.peer.clone(),
            _ => peer,
        };
        self.core.handle(now, Input::Connected { peer, dialed });
    }

    fn drain_outputs(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                StackOutput::Send { to, msg } => {
                    let through = matches!(&msg, Message::Relay(r) if self.partitioned(&r.to));
                    if self.partitioned(&to) || through {
                        continue;
                    }
                    let Some(active) = self.conns.get(&to) else {
                        continue;
                    };
                    // A peer whose queue is filling gets no announcements (anti-entropy will
                    // repair), so payloads and membership keep flowing.
                    let lazy = matches!(&msg, Message::Broadcast(b) if b.is_lazy());
                    let tx = &active.lanes[lane_of(&self.shared.channels, &msg)];
                    if lazy && tx.capacity() < tx.max_capacity() / 4 {
                        self.shed_frames += 1;
                        if self.shed_frames.is_power_of_two() {
                            let n = self.shed_frames;
                            warn!(peer = %to, "send queue to {to} is filling; shed {n} lazy broadcast frames so far");
                        }
                        continue;
                    }
                    // Small messages are written below, all those to one peer in one write.
                    let msg = match active.outbox.hold(msg) {
                        Hold::Held { first: true } => {
                            self.held.push(active.outbox.clone());
                            continue;
                        }
                        Hold::Held { first: false } => continue,
                        Hold::Refused(msg) => msg,
                    };
                    // A closed queue means the connection just ended; its close is on its way.
                    active.outbox.queue();
                    let sent = tx.try_send(msg);
                    if sent.is_err() {
                        active.outbox.unqueue();
                    }
                    if let Err(TrySendError::Full(_)) = sent {
                        self.dropped_frames += 1;
                        if self.dropped_frames.is_power_of_two() {
                            let n = self.dropped_frames;
                            warn!(peer = %to, "send queue to {to} is full; {n} frames dropped so far");
                        }
                    }
                }
                StackOutput::Dial { addr } => {
                    self.tasks.spawn(conn::dial(self.shared.clone(), addr));
                }
                StackOutput::Disconnect { name } => {
                    // Dropping the sender closes the connection once its queue is written.
                    self.conns.remove(&name);
                }
                // Handlers hand deliveries to the application themselves.
                StackOutput::Delivered(_) => {}
                StackOutput::Messaging(m) => self.on_messaging(m),
                StackOutput::Table(t) => self.on_table(t),
                StackOutput::Singleton { name, event } => self.on_singleton(name, event),
                StackOutput::Event(e) => {
                    let m = &e.member;
                    info!(member = %m.name, incarnation = m.incarnation, "member {} is {:?} ({}, incarnation {})", m.name, e.kind, m.status, m.incarnation);
                    let _ = self.published.events.send(e);
                }
            }
        }
        for outbox in self.held.drain(..) {
            outbox.write_held();
        }
        // Reap finished tasks so the set does not grow without bound.
        while self.tasks.try_join_next().is_some() {}
    }

    fn publish(&mut self) {
        let membership = &self.core.membership;
        if membership.view_version() == self.published_version {
            return;
        }
        self.published_version = membership.view_version();
        let members: Vec<Arc<Member>> = membership.versions().cloned().collect();
        self.published.members.send_replace(Arc::new(members));
        let local = membership.local();
        let me = PeerInfo {
            name: local.name.clone(),
            addr: local.addr,
            incarnation: local.incarnation,
            instance: self.instance,
            role: ensemble_proto::topology::role_of(local),
        };
        self.published.me.send_if_modified(|old| {
            let changed = *old != me;
            *old = me;
            changed
        });
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

impl BroadcastStatus {
    fn of(
        p: &Plumtree,
        members: Vec<String>,
        root: Option<&str>,
        shed_frames: u64,
        dropped_frames: u64,
    ) -> Self {
        let root = root.map_or_else(|| p.name().to_owned(), str::to_owned);
        let (eager, lazy) = p.peers(&root);
        let mut roots: Vec<String> = p.roots().map(str::to_owned).collect();
        roots.sort();
        BroadcastStatus {
            members,
            neighbours: p.neighbours().map(str::to_owned).collect(),
            handlers: p.handlers().map(str::to_owned).collect(),
            root,
            eager,
            lazy,
            roots,
            exchanges: p.exchanges(),
            stats: p.stats(),
            shed_frames,
            dropped_frames,
        }
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

/// The send queue a message goes to: its channel's, or lane 0 (the default channel, acks and
/// every other protocol; also a channel this node did not declare, as a relay may see).
fn lane_of(channels: &[String], msg: &Message) -> usize {
    msg.channel()
        .and_then(|c| channels.iter().position(|d| d == c))
        .map_or(0, |i| i + 1)
}

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
