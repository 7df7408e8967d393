//! Cluster singletons: `node.singleton(name, handler, options)` on every node that may run it;
//! exactly one of them leads. The handler hears when this node leads (with its fencing epoch),
//! follows, or stops leading; while it leads it also hears cluster changes; its timer fires on
//! the leader only, or on every node ([`TimerScope`]).

mod task;

use std::time::Duration;

use ensemble_proto::singleton::SingletonSpec;
use tokio::sync::{mpsc, watch};

use crate::command::{Command, SingletonCommand, SingletonStatus, SingletonTask};
use crate::{Error, Node};

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
    /// The delay [`Singleton::next_timer_in`] asked for has passed: on the leader only, or
    /// on every node with [`TimerScope::EveryNode`].
    Timer,
    /// This node's leadership ends (`NameConflict`, `LostMajority`), or the activator stops
    /// here (`Stopped`: every activator hears it, leader or follower, as its last event).
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

    /// When the next [`SingletonEvent::Timer`] is due (`None`: no timer). Asked while
    /// leading ([`TimerScope::Leader`], the default) or on every node from `init` on
    /// ([`TimerScope::EveryNode`]): after the timer fired or leadership began, and after any
    /// event while no timer is set.
    fn next_timer_in(&self, _state: &Self::State) -> Option<Duration> {
        None
    }

    /// What the handler exposes of its state in [`SingletonStatus::mod_state`] (`Node::singletons`,
    /// `GET /v1/singletons`); asked after `init` and after every event. Keep it small. `None`
    /// (the default): nothing.
    fn mod_state(&self, _state: &Self::State) -> Option<serde_json::Value> {
        None
    }
}

/// Where a singleton's [`SingletonEvent::Timer`] fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimerScope {
    /// On the leader only (the default): no timer runs while following, and a leadership
    /// that ends drops its timer.
    #[default]
    Leader,
    /// On every node, leader or follower, as Stoker's activator does: the first timer is
    /// asked for right after `init`, and a change of role keeps the timer running. The
    /// handler decides what a follower does with it.
    EveryNode,
}

/// Options of a singleton.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SingletonOptions {
    spec: SingletonSpec,
    timers: TimerScope,
    restart_on_name_conflict: bool,
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
    /// Where the handler's timer fires (default: [`TimerScope::Leader`]).
    pub fn timers(mut self, scope: TimerScope) -> Self {
        self.timers = scope;
        self
    }

    /// A leader that loses a name conflict (two leaders met after a split healed) starts
    /// afresh, as a restarted Stoker activator does: after its `Shutdown { NameConflict }`
    /// event the handler's state is dropped and `init` runs again before the next event.
    /// Default: the state is kept.
    pub fn restart_on_name_conflict(mut self) -> Self {
        self.restart_on_name_conflict = true;
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

    /// Stops the activator here. Its handler hears `Shutdown(Stopped)`, leader or follower;
    /// a leader steps down and the next node takes over at once. Returns when the handler has
    /// seen its last event.
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
        let (state_tx, state_rx) = watch::channel(None);
        // Membership events are taken before the activator starts, so a leader misses none.
        let members = self.events();
        let name_ = name.to_string();
        let task = SingletonTask {
            events: tx,
            mod_state: state_rx,
        };
        self.call(|reply| {
            Command::Singleton(SingletonCommand::Register {
                name: name_,
                spec: options.spec.clone(),
                task,
                reply,
            })
        })
        .await??;
        let channels = task::Channels {
            events: rx,
            members,
            mod_state: state_tx,
        };
        let me = self.name().to_string();
        let task = tokio::spawn(task::run(handler, options, channels, me));
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
