//! The [`Node`] handle: start a node, read its members, follow its events, join, leave.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ensemble_proto::broadcast::events::{EventLog, UserEvent, USER_EVENTS};
use ensemble_proto::broadcast::Plumtree;
use ensemble_proto::wire::PeerInfo;
use ensemble_proto::{Member, MemberEvent, Membership, Stack, Status};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::BroadcastStream;
use tracing::warn;

use crate::command::{Command, DriverMsg, FaultCommand, MembershipCommand};
use crate::config::{user_tags, Config};
use crate::driver::{Driver, Gate, Partitions, Published};
use crate::error::Error;
use crate::transport::conn::Shared;

/// How long [`Node::join`] waits for the handshake.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A reference to a partition injected with [`Node::inject_partition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionRef(pub u64);

/// A running cluster node. Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// A handle that does not keep the node running (for background tasks of the node itself).
#[derive(Clone)]
pub(crate) struct WeakNode(std::sync::Weak<Inner>);

impl WeakNode {
    /// The node, if a handle to it is still held somewhere.
    pub fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

struct Inner {
    name: String,
    addr: SocketAddr,
    driver: mpsc::Sender<DriverMsg>,
    members: watch::Receiver<Arc<Vec<Arc<Member>>>>,
    /// Never read: only resubscribed. The driver holds the only sender, so streams end when
    /// the node stops.
    events: broadcast::Receiver<MemberEvent>,
    /// Never read either: only resubscribed.
    user_events: broadcast::Receiver<UserEvent>,
    partitions: watch::Receiver<Partitions>,
    /// Whether the tracker's background task runs.
    tracker: std::sync::atomic::AtomicBool,
    /// Named messaging channels declared besides the default one.
    channels: Vec<String>,
    /// The role in a client-server topology, which takes a tag.
    role: Option<ensemble_proto::topology::Role>,
}

impl Drop for Inner {
    /// The last handle is gone: stop the node (without leaving) instead of running unreachable.
    fn drop(&mut self) {
        let (reply, _) = oneshot::channel();
        let _ = self.driver.try_send(DriverMsg::Command(Command::Membership(
            MembershipCommand::Shutdown { reply },
        )));
    }
}

impl Node {
    /// Starts a node: binds its listener, then joins the configured seeds in the background.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), ensemble::Error> {
    /// use ensemble::{Config, Node, Secret};
    /// let secret = Secret::new("a-long-shared-cluster-secret")?;
    /// let mut config = Config::new("app1", "127.0.0.1:7946".parse().unwrap(), secret);
    /// config.seeds.push("127.0.0.1:7947".parse().unwrap());
    /// let node = Node::start(config).await?;
    /// for m in node.members() {
    ///     println!("{} {} {}", m.name, m.addr, m.status);
    /// }
    /// node.leave().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(config: Config) -> Result<Node, Error> {
        let role = config.membership.topology.role();
        let tags = config.validate()?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|error| Error::Bind {
                addr: config.bind,
                error,
            })?;
        let bound = listener.local_addr().map_err(|error| Error::Bind {
            addr: config.bind,
            error,
        })?;
        let addr = match config.advertise {
            Some(a) => a,
            None if bound.ip().is_unspecified() => {
                return Err(Error::Config(format!(
                    "bound to {bound}, which other nodes cannot dial; set an advertise address \
                     (--advertise HOST:PORT)"
                )))
            }
            None => bound,
        };
        // A restarted node must look newer than its old self: start from the clock.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let local = Member {
            name: config.name.clone(),
            addr,
            incarnation,
            status: Status::Alive,
            tags,
        };
        let instance = rand::random();
        let me = PeerInfo {
            name: config.name.clone(),
            addr,
            incarnation,
            instance,
            role,
        };
        let rng_seed = rand::random();
        let now = std::time::Instant::now();
        let seeds = config
            .seeds
            .iter()
            .copied()
            .filter(|s| *s != addr && *s != bound);
        let membership = Membership::new(
            config.membership.clone(),
            local.clone(),
            seeds,
            rng_seed,
            now,
        );
        let mut plumtree = Plumtree::new(
            config.broadcast.clone(),
            config.name.clone(),
            rng_seed ^ 0x9e37_79b9_7f4a_7c15,
            now,
        );
        let (user_events_tx, user_events_rx) = broadcast::channel(4096);
        let log = EventLog::new(config.name.clone(), instance, config.event_log, move |e| {
            let _ = user_events_tx.send(e);
        });
        plumtree
            .register(USER_EVENTS, Box::new(log))
            .expect("the first handler");
        let messaging = ensemble_proto::messaging::Messaging::new(Duration::from_millis(500));
        let core = Stack::new(membership, plumtree, messaging, now);

        let (driver_tx, driver_rx) = mpsc::channel(8192);
        let (me_tx, me_rx) = watch::channel(me);
        let (members_tx, members_rx) = watch::channel(Arc::new(vec![Arc::new(local)]));
        let (events_tx, events_rx) = broadcast::channel(4096);
        let (partitions_tx, partitions_rx) = watch::channel(BTreeMap::new());
        let shared = Shared::new(
            config.cluster.clone(),
            config.secret.clone(),
            me_rx,
            &config,
            driver_tx.clone(),
            Arc::new(Gate::new(partitions_rx.clone())),
        );
        let published = Published {
            members: members_tx,
            events: events_tx.clone(),
            me: me_tx,
            partitions: partitions_tx,
        };
        let own_addrs = vec![addr, bound];
        let driver = Driver::new(
            core,
            driver_rx,
            shared,
            published,
            instance,
            own_addrs,
            config.busy_wait,
        );
        tokio::spawn(driver.run(listener));
        Ok(Node {
            inner: Arc::new(Inner {
                name: config.name,
                addr,
                driver: driver_tx,
                members: members_rx,
                events: events_rx,
                user_events: user_events_rx,
                partitions: partitions_rx,
                tracker: std::sync::atomic::AtomicBool::new(false),
                channels: config.channels.clone(),
                role,
            }),
        })
    }

    /// True if the tracker's task was started already; marks it started.
    pub(crate) fn tracker_started(&self) -> bool {
        self.inner
            .tracker
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// The members this node holds a connection to: all of them in a small full mesh, its
    /// overlay neighbours in a partial view, its servers for a client (see
    /// [`crate::Topology`]). Broadcast's neighbours are exactly these connections.
    pub async fn connections(&self) -> Result<Vec<String>, Error> {
        Ok(self.broadcast_status(None).await?.neighbours)
    }

    /// The named messaging channels declared besides the default one.
    pub fn channels(&self) -> &[String] {
        &self.inner.channels
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address other members dial to reach this node.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Every known member, this node included, with `down` and `left` members until their
    /// tombstones expire, in name order. Answers at once from the latest published view.
    pub fn members(&self) -> Vec<Member> {
        let shared = self.inner.members.borrow().clone();
        let mut members: Vec<Member> = shared.iter().map(|m| (**m).clone()).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members
    }

    /// This node as the cluster sees it.
    pub fn local_member(&self) -> Member {
        let members = self.inner.members.borrow();
        members
            .iter()
            .find(|m| m.name == self.inner.name)
            .map(|m| (**m).clone())
            .expect("the view always holds the local member")
    }

    /// A stream of membership events (`up`, `down`, `left`, `updated`) of other members, from
    /// now on. A subscriber that falls more than 4096 events behind skips the oldest.
    pub fn events(&self) -> impl Stream<Item = MemberEvent> + Send + Unpin + 'static {
        BroadcastStream::new(self.inner.events.resubscribe())
            .filter_map(|e| async move {
                match e {
                    Ok(e) => Some(e),
                    Err(err) => {
                        warn!("membership event subscriber fell behind: {err}");
                        None
                    }
                }
            })
            .boxed()
    }

    /// Waits until the member list changes after this call (useful to wait for convergence).
    /// Fails once the node has stopped.
    pub async fn changed(&self) -> Result<(), Error> {
        let mut rx = self.inner.members.clone();
        rx.borrow_and_update();
        rx.changed().await.map_err(|_| Error::Stopped)
    }

    /// True if `name` is alive or suspect in the published view.
    pub(crate) fn is_up(&self, name: &str) -> bool {
        let members = self.inner.members.borrow();
        members.iter().any(|m| m.name == name && m.status.is_up())
    }

    pub(crate) fn driver_sender(&self) -> mpsc::Sender<DriverMsg> {
        self.inner.driver.clone()
    }

    pub(crate) fn user_events_receiver(&self) -> broadcast::Receiver<UserEvent> {
        self.inner.user_events.resubscribe()
    }

    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .driver
            .send(DriverMsg::Command(make(tx)))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Joins the cluster of the node at `addr`. Returns that node's name once the handshake
    /// succeeded; the rest of the cluster follows by gossip. The address stays a seed that is
    /// redialled if the clusters ever split apart.
    pub async fn join(&self, addr: SocketAddr) -> Result<String, Error> {
        let reply = self.call(|reply| Command::Membership(MembershipCommand::Join { addr, reply }));
        match tokio::time::timeout(JOIN_TIMEOUT, reply).await {
            Ok(r) => r?,
            Err(_) => Err(Error::Join {
                addr,
                reason: format!("no answer within {JOIN_TIMEOUT:?}"),
            }),
        }
    }

    /// Replaces this node's tags; the cluster sees an `updated` event.
    pub async fn set_tags(&self, tags: BTreeMap<String, String>) -> Result<(), Error> {
        let tags = user_tags(tags, self.inner.role)?;
        self.call(|reply| Command::Membership(MembershipCommand::SetTags { tags, reply }))
            .await
    }

    /// Leaves the cluster gracefully: the others mark this node `left` (not `down`), then the
    /// node shuts down.
    pub async fn leave(&self) {
        let _ = self
            .call(|reply| Command::Membership(MembershipCommand::Leave { reply }))
            .await;
    }

    /// Removes another member from the cluster: every member marks it `left`, nobody redials
    /// it, stale gossip cannot bring it back, and the removed node stops once it hears (a
    /// restarted process with the same name may join again). Removing this node's own name
    /// is [`Node::leave`] without waiting for the shutdown.
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        let name = name.to_owned();
        self.call(|reply| Command::Membership(MembershipCommand::Remove { name, reply }))
            .await?
    }

    /// Stops the node without announcing it: the others will detect it as `down`.
    pub async fn shutdown(&self) {
        let _ = self
            .call(|reply| Command::Membership(MembershipCommand::Shutdown { reply }))
            .await;
    }

    /// For tests: drops all traffic with the named members at this node's transport (both
    /// directions, new connections refused) until [`Node::resolve_partition`].
    pub async fn inject_partition(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Result<PartitionRef, Error> {
        let names = names.into_iter().collect();
        self.call(|reply| Command::Faults(FaultCommand::InjectPartition { names, reply }))
            .await
            .map(PartitionRef)
    }

    /// Ends an injected partition.
    pub async fn resolve_partition(&self, partition: PartitionRef) -> Result<(), Error> {
        let id = partition.0;
        self.call(|reply| Command::Faults(FaultCommand::ResolvePartition { id, reply }))
            .await?
    }

    /// Partitions in force, by reference.
    pub fn partitions(&self) -> BTreeMap<PartitionRef, BTreeSet<String>> {
        let p = self.inner.partitions.borrow();
        p.iter()
            .map(|(k, v)| (PartitionRef(*k), v.clone()))
            .collect()
    }
}
