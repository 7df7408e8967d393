//! The [`Node`] handle, and [`Node::start`], which wires a node up: its listener, the driver's
//! task and channels, and what the connection tasks share. The calls on a node live in `api/`,
//! one module per capability.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ensemble_proto::broadcast::events::{EventLog, UserEvent, USER_EVENTS};
use ensemble_proto::stack::Input;
use ensemble_proto::wire::PeerInfo;
use ensemble_proto::{Member, MemberEvent, Stack, StackConfig, Status};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::command::{Command, DriverMsg, MembershipCommand};
use crate::config::Config;
use crate::driver::{Driver, Gate, Partitions, Published};
use crate::error::Error;
use crate::transport::conn::Shared;

/// A running cluster node. Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
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

/// What every handle on a node shares: what the driver publishes, and its inbox.
pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) driver: mpsc::Sender<DriverMsg>,
    pub(crate) members: watch::Receiver<Arc<Vec<Arc<Member>>>>,
    pub(crate) accusations: watch::Receiver<Arc<crate::command::AccusationMap>>,
    /// Never read: only resubscribed. The driver holds the only sender, so streams end when
    /// the node stops.
    pub(crate) events: broadcast::Receiver<MemberEvent>,
    /// Never read either: only resubscribed.
    pub(crate) connection_events: broadcast::Receiver<crate::command::ConnectionEvent>,
    /// Never read either: only resubscribed.
    pub(crate) user_events: broadcast::Receiver<UserEvent>,
    /// Never read either: only resubscribed.
    pub(crate) table_joins: broadcast::Receiver<crate::command::TableJoinEvent>,
    pub(crate) partitions: watch::Receiver<Partitions>,
    /// Whether the tracker's background task runs.
    pub(crate) tracker: std::sync::atomic::AtomicBool,
    /// Named messaging channels declared besides the default one.
    pub(crate) channels: Vec<String>,
    /// The role in a client-server topology, which takes a tag.
    pub(crate) role: Option<ensemble_proto::topology::Role>,
    /// The cluster keys, shared with the handshakes and the driver.
    pub(crate) keyring: crate::keyring::SharedKeyring,
    /// The largest frame ([`Config::max_frame_size`]): larger messages are refused at the API.
    pub(crate) max_frame: usize,
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
        crate::metrics::register();
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
        let rng_seed = rand::random();
        let now = std::time::Instant::now();
        let seeds = config
            .seeds
            .iter()
            .copied()
            .filter(|s| *s != addr && *s != bound);
        let stack_config = StackConfig {
            membership: config.membership.clone(),
            broadcast: config.broadcast.clone(),
            messaging: config.messaging,
            tables: config.tables.clone(),
            singletons: config.singletons.clone(),
            queries: Default::default(),
        };
        let mut core = Stack::new(stack_config, local.clone(), seeds, rng_seed, now);
        let (user_events_tx, user_events_rx) = broadcast::channel(4096);
        let log = EventLog::new(config.name.clone(), instance, config.event_log, move |e| {
            let _ = user_events_tx.send(e);
        });
        // The first handler: its answer (registered) goes to no caller.
        let register = ensemble_proto::broadcast::Input::Register {
            token: 0,
            name: USER_EVENTS.into(),
            handler: Box::new(log),
        };
        core.handle(now, Input::Broadcast(register));
        let me = PeerInfo::of(core.membership().local(), instance);

        let (driver_tx, driver_rx) = mpsc::channel(8192);
        let (me_tx, me_rx) = watch::channel(me);
        let (members_tx, members_rx) = watch::channel(Arc::new(vec![Arc::new(local)]));
        let (accusations_tx, accusations_rx) = watch::channel(Arc::default());
        let (events_tx, events_rx) = broadcast::channel(4096);
        let (connections_tx, connections_rx) = broadcast::channel(4096);
        let (table_joins_tx, table_joins_rx) = broadcast::channel(1024);
        let (partitions_tx, partitions_rx) = watch::channel(BTreeMap::new());
        let keyring = crate::Keyring::with(config.secret.clone(), config.keys.iter().cloned())?;
        let keyring = crate::keyring::KeyringCell::new(keyring);
        let shared = Shared::new(
            config.cluster.clone(),
            keyring.clone(),
            me_rx,
            &config,
            driver_tx.clone(),
            Arc::new(Gate::new(partitions_rx.clone())),
        );
        let published = Published {
            members: members_tx,
            accusations: accusations_tx,
            events: events_tx.clone(),
            me: me_tx,
            partitions: partitions_tx,
            connections: connections_tx,
            table_joins: table_joins_tx,
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
        )
        .with_secret_watch(config.secret_mismatch_warning);
        tokio::spawn(driver.run(listener));
        Ok(Node {
            inner: Arc::new(Inner {
                name: config.name,
                addr,
                driver: driver_tx,
                members: members_rx,
                accusations: accusations_rx,
                events: events_rx,
                connection_events: connections_rx,
                user_events: user_events_rx,
                table_joins: table_joins_rx,
                partitions: partitions_rx,
                tracker: std::sync::atomic::AtomicBool::new(false),
                channels: config.channels.clone(),
                role,
                keyring,
                max_frame: config.max_frame_size,
            }),
        })
    }

    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address other members dial to reach this node.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub(crate) fn driver_sender(&self) -> mpsc::Sender<DriverMsg> {
        self.inner.driver.clone()
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
}
