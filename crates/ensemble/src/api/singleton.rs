//! Cluster singletons: `node.singleton(name, handler, options)` on every node that may run it;
//! exactly one of them leads. The handler hears when this node leads (with its fencing epoch),
//! follows, or stops leading; while it leads it also hears cluster changes and its timer.

use std::time::Duration;

use ensemble_proto::singleton::{self as core, SingletonSpec};
use futures::Stream;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::command::{Command, SingletonCommand, SingletonStatus};
use crate::{Error, EventKind, Node};

pub use ensemble_proto::singleton::{Role as SingletonRole, ShutdownReason};

/// What a singleton's handler hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingletonEvent {
    /// This node leads now. Stamp side effects with `epoch`: it is higher than that of any
    /// earlier leadership of this singleton.
    NowLeader {
        /// The fencing epoch of this leadership.
        epoch: u64,
    },
    /// This node follows `leader` (`None` while no leader is known).
    NowFollower {
        /// The leader.
        leader: Option<String>,
    },
    /// Leader only: another member came up (`up`) or went down or left.
    ClusterChange {
        /// The member.
        node: String,
        /// Whether it is up now.
        up: bool,
    },
    /// Leader only: the delay [`Singleton::next_timer_in`] asked for has passed.
    Timer,
    /// This node's leadership ends.
    Shutdown {
        /// Why.
        reason: ShutdownReason,
    },
}

/// The code a singleton runs (after Stoker's activator callbacks).
pub trait Singleton: Send + 'static {
    /// The handler's state, threaded through its events.
    type State: Send + 'static;

    /// The state before any event.
    fn init(&mut self) -> Self::State;

    /// Handles one event, returning the next state.
    fn event(&mut self, state: Self::State, event: SingletonEvent) -> Self::State;

    /// While leading: when the next [`SingletonEvent::Timer`] is due (`None`: no timer).
    /// Asked after every event.
    fn next_timer_in(&self, _state: &Self::State) -> Option<Duration> {
        None
    }
}

/// Options of a singleton.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SingletonOptions {
    spec: SingletonSpec,
}

impl SingletonOptions {
    /// Defaults: no majority rule (every side of a split elects a leader; after the heal the
    /// leadership with the higher epoch keeps leading).
    pub fn new() -> Self {
        Self::default()
    }

    /// The majority rule: `expected` nodes run this singleton; a leader needs a majority of
    /// them, and steps down when it no longer reaches one. Two leaders never overlap.
    pub fn majority_of(mut self, expected: usize) -> Self {
        self.spec.majority_of = Some(expected);
        self
    }
}

/// A running singleton activator on this node. It runs until [`SingletonHandle::stop`] or
/// until the node leaves or shuts down (dropping the handle does not stop it).
pub struct SingletonHandle {
    name: String,
    node: Node,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SingletonHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingletonHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl SingletonHandle {
    /// The singleton's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the singleton looks from this node.
    pub async fn status(&self) -> Result<Option<SingletonStatus>, Error> {
        let all = self.node.singletons().await?;
        Ok(all.into_iter().find(|s| s.name == self.name))
    }

    /// Stops the activator here. A leader steps down (its handler hears `Shutdown(Stopped)`)
    /// and the next node takes over at once. Returns when the handler has seen its last event.
    pub async fn stop(self) -> Result<(), Error> {
        let name = self.name.clone();
        self.node
            .call(|reply| Command::Singleton(SingletonCommand::Unregister { name, reply }))
            .await?;
        let _ = self.task.await;
        Ok(())
    }
}

impl Node {
    /// Runs an activator for the singleton `name` on this node, with `handler`. Of the nodes
    /// that do, one leads.
    pub async fn singleton<S: Singleton>(
        &self,
        name: &str,
        handler: S,
        options: SingletonOptions,
    ) -> Result<SingletonHandle, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Membership events are taken before the activator starts, so a leader misses none.
        let members = self.events();
        let name_ = name.to_string();
        let spec = options.spec;
        self.call(|reply| {
            Command::Singleton(SingletonCommand::Register {
                name: name_,
                spec,
                events: tx,
                reply,
            })
        })
        .await??;
        let me = self.name().to_string();
        let task = tokio::spawn(run(handler, rx, members, me));
        Ok(SingletonHandle {
            name: name.to_string(),
            node: self.clone(),
            task,
        })
    }

    /// The singletons this node runs an activator for.
    pub async fn singletons(&self) -> Result<Vec<SingletonStatus>, Error> {
        self.call(|reply| Command::Singleton(SingletonCommand::List { reply }))
            .await
    }
}

/// Runs the handler: its events in order, cluster changes and timers only while leading.
async fn run<S: Singleton>(
    mut handler: S,
    mut events: mpsc::UnboundedReceiver<core::SingletonEvent>,
    mut members: impl Stream<Item = crate::MemberEvent> + Unpin,
    me: String,
) {
    let mut state = handler.init();
    let mut leading = false;
    let mut timer: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Biased: the activator's events first, so a Shutdown already queued is seen before a
        // timer or a cluster change that would have the handler act as leader.
        let event = tokio::select! {
            biased;
            e = events.recv() => match e {
                Some(e) => e.into(),
                None if leading => {
                    // The node stopped without a word: the leadership ends all the same.
                    leading = false;
                    SingletonEvent::Shutdown { reason: ShutdownReason::Stopped }
                }
                None => return,
            },
            m = members.next() => match m {
                Some(m) if leading && m.member.name != me => match m.kind {
                    EventKind::Up => SingletonEvent::ClusterChange { node: m.member.name.clone(), up: true },
                    EventKind::Down | EventKind::Left => {
                        SingletonEvent::ClusterChange { node: m.member.name.clone(), up: false }
                    }
                    EventKind::Updated => continue,
                },
                _ => continue,
            },
            () = sleep => SingletonEvent::Timer,
        };
        let rearm = matches!(
            event,
            SingletonEvent::Timer | SingletonEvent::NowLeader { .. }
        );
        match &event {
            SingletonEvent::NowLeader { .. } => leading = true,
            SingletonEvent::Shutdown { .. } | SingletonEvent::NowFollower { .. } => leading = false,
            _ => {}
        }
        state = handler.event(state, event);
        // The timer keeps its deadline across other events (a flapping member must not
        // starve it); it is asked for again after it fired or leadership began.
        if !leading {
            timer = None;
        } else if rearm || timer.is_none() {
            timer = handler
                .next_timer_in(&state)
                .map(crate::time::tokio_deadline);
        }
    }
}

impl From<core::SingletonEvent> for SingletonEvent {
    fn from(e: core::SingletonEvent) -> Self {
        match e {
            core::SingletonEvent::NowLeader { epoch } => SingletonEvent::NowLeader { epoch },
            core::SingletonEvent::NowFollower { leader } => SingletonEvent::NowFollower { leader },
            core::SingletonEvent::Shutdown { reason } => SingletonEvent::Shutdown { reason },
        }
    }
}
