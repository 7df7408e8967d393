//! Membership on a [`Node`]: the members and their events as this node last published them,
//! joining, tags, leaving, removing another member, stopping, and callbacks on members that
//! come up or go down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ensemble_proto::membership::Accuser;
use ensemble_proto::{Member, MemberEvent};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tracing::warn;

use crate::command::{AccusationMap, Command, ConnectionEvent, MembershipCommand};
use crate::config::user_tags;
use crate::error::Error;
use crate::node::Node;
use ensemble_proto::member::Tags;
use ensemble_proto::topology::{Role, RESERVE_TAG, ROLE_TAG};

/// How long [`Node::join`] waits for the handshake.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Node {
    /// The members this node holds a connection to: all of them in a small full mesh, its
    /// overlay neighbours in a partial view, its servers for a client (see
    /// [`crate::Topology`]). Broadcast's neighbours are exactly these connections.
    pub async fn connections(&self) -> Result<Vec<String>, Error> {
        Ok(self.broadcast_status(None).await?.neighbours)
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
        skip_lagged(self.inner.events.resubscribe(), "membership event")
    }

    /// The member list as last published (every member with its status, `suspect` included,
    /// in no particular order), now and then again each time it changes; ends when the node
    /// stops. A subscriber that reads late sees only the latest list. Each item shares the
    /// published list: nothing is copied.
    pub fn member_lists(
        &self,
    ) -> impl Stream<Item = std::sync::Arc<Vec<std::sync::Arc<Member>>>> + Send + Unpin + 'static
    {
        tokio_stream::wrappers::WatchStream::new(self.inner.members.clone())
    }

    /// The last time this node marked each member suspect, and who made it: its own probes
    /// or the peer that told it. Published before the member list, so a member suspect in a
    /// list read before it is there. A handle that holds no node.
    pub fn accusations(&self) -> Accusations {
        Accusations(self.inner.accusations.clone())
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
        let mut tags = user_tags(tags, self.inner.role)?;
        // Slots reserved with `Node::reserve` stay reserved.
        let me = self.local_member();
        if let Some(r) = me.tags.get(RESERVE_TAG) {
            tags = tags.with(RESERVE_TAG, r);
            with_role(tags.clone(), self.inner.role).check()?;
        }
        self.set_all_tags(tags).await
    }

    /// Sets every tag but the role (membership adds it), checked.
    pub(crate) async fn set_all_tags(&self, tags: Tags) -> Result<(), Error> {
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
}

/// The last suspicion of each member a node marked suspect ([`Node::accusations`]).
#[derive(Clone)]
pub struct Accusations(tokio::sync::watch::Receiver<std::sync::Arc<AccusationMap>>);

impl Accusations {
    /// Who made the node mark `member` suspect at `incarnation`, if it did (as last published).
    pub fn of(&self, member: &str, incarnation: u64) -> Option<Accuser> {
        let all = self.0.borrow();
        let a = all.get(member).filter(|a| a.incarnation == incarnation)?;
        Some(a.accuser.clone())
    }

    /// Every member the node has marked suspect, with the incarnation and who made it (the
    /// last time for each, as last published).
    pub fn all(&self) -> Vec<(String, u64, Accuser)> {
        self.0
            .borrow()
            .iter()
            .map(|(m, a)| (m.clone(), a.incarnation, a.accuser.clone()))
            .collect()
    }
}

/// The events of `rx` as a stream; a subscriber that falls behind skips the oldest, logged.
pub(crate) fn skip_lagged<T: Clone + Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<T>,
    what: &'static str,
) -> impl Stream<Item = T> + Send + Unpin + 'static {
    BroadcastStream::new(rx)
        .filter_map(move |e| async move {
            match e {
                Ok(e) => Some(e),
                Err(err) => {
                    warn!("{what} subscriber fell behind: {err}");
                    None
                }
            }
        })
        .boxed()
}

/// Whose changes an [`Node::on_up`] or [`Node::on_down`] callback (or their connection
/// forms) wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Every other member.
    Any,
    /// This member only.
    Node(String),
}

impl Watch {
    fn matches(&self, name: &str) -> bool {
        match self {
            Watch::Any => true,
            Watch::Node(n) => n == name,
        }
    }
}

impl Node {
    /// Calls `f` with the member's name whenever a member `watch` picks comes up (joins, or
    /// comes back after being down or away), until the node stops. `f` runs on a task of its
    /// own, in event order.
    pub fn on_up(&self, watch: Watch, f: impl FnMut(String) + Send + 'static) {
        self.on_kind(watch, &[crate::EventKind::Up], f);
    }

    /// Calls `f` with the member's name whenever a member `watch` picks goes down or leaves,
    /// until the node stops. `f` runs on a task of its own, in event order.
    pub fn on_down(&self, watch: Watch, f: impl FnMut(String) + Send + 'static) {
        self.on_kind(watch, &[crate::EventKind::Down, crate::EventKind::Left], f);
    }

    /// A stream of this node's connections to other members opening and closing, from now
    /// on, as membership keeps them (a connection dropped for a simultaneous dial is not
    /// reported). A subscriber that falls more than 4096 events behind skips the oldest.
    pub fn connection_events(
        &self,
    ) -> impl Stream<Item = ConnectionEvent> + Send + Unpin + 'static {
        skip_lagged(
            self.inner.connection_events.resubscribe(),
            "connection event",
        )
    }

    /// Partisan's `on_up`: calls `f` with the member's name whenever a connection to a member
    /// `watch` picks opens, until the node stops. In a full mesh that is about when the member
    /// comes up; a client sees only its servers, and a restarted peer or a redial after a
    /// dropped connection fires again although membership saw no change. `f` runs on a task
    /// of its own, in event order.
    pub fn on_connection_up(&self, watch: Watch, f: impl FnMut(String) + Send + 'static) {
        self.on_connection(watch, true, f);
    }

    /// Partisan's `on_down`: calls `f` with the member's name whenever a connection to a
    /// member `watch` picks closes, until the node stops (see [`Node::on_connection_up`]).
    pub fn on_connection_down(&self, watch: Watch, f: impl FnMut(String) + Send + 'static) {
        self.on_connection(watch, false, f);
    }

    fn on_connection(&self, watch: Watch, up: bool, mut f: impl FnMut(String) + Send + 'static) {
        let mut events = self.connection_events();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if e.up == up && watch.matches(&e.peer) {
                    f(e.peer);
                }
            }
        });
    }

    fn on_kind(
        &self,
        watch: Watch,
        kinds: &'static [crate::EventKind],
        mut f: impl FnMut(String) + Send + 'static,
    ) {
        let mut events = self.events();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if kinds.contains(&e.kind) && watch.matches(&e.member.name) {
                    f(e.member.name.clone());
                }
            }
        });
    }
}

/// `tags` with the role tag `role` takes, for size checks.
pub(crate) fn with_role(tags: Tags, role: Option<Role>) -> Tags {
    match role {
        Some(r) => tags.with(ROLE_TAG, r.as_str()),
        None => tags,
    }
}
