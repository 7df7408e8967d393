//! The driver's side of singletons: registrations from [`crate::Node::singleton`] into the
//! core, and each activator's events out to the task that runs its handler.

use std::time::{Instant, SystemTime};

use ensemble_proto::singleton::{self, SingletonError, SingletonEvent, SingletonInfo};
use ensemble_proto::stack::Input;
use tokio::sync::oneshot;
use tracing::info;

use super::Driver;
use crate::command::{SingletonCommand, SingletonStatus, SingletonTask};

/// A registration waiting for the core's answer (`Done { token }`).
pub(super) struct SingletonWaiter {
    name: String,
    /// The task the name had before, put back if the registration is refused.
    previous: Option<SingletonTask>,
    reply: oneshot::Sender<Result<(), SingletonError>>,
}

impl SingletonStatus {
    fn from_info(i: SingletonInfo, now: Instant, task: Option<&SingletonTask>) -> Self {
        let wall = SystemTime::now();
        // An instant of the monotonic clock as milliseconds since the Unix epoch.
        let wall_ms = |at: Instant| {
            let at = wall.checked_sub(now.saturating_duration_since(at))?;
            let ms = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
            u64::try_from(ms).ok()
        };
        SingletonStatus {
            since_ms: i.since.and_then(wall_ms),
            created_at_ms: wall_ms(i.created),
            active_from_ms: i.active_from.and_then(wall_ms),
            mod_state: task.and_then(|t| t.mod_state.borrow().clone()),
            name: i.name,
            role: i.role,
            leader: i.leader,
            epoch: i.epoch,
            candidates: i.candidates,
            majority_of: i.majority_of,
            mismatched: i.mismatched,
        }
    }
}

impl Driver {
    pub(super) fn on_singleton_command(&mut self, now: Instant, c: SingletonCommand) {
        match c {
            SingletonCommand::Register {
                name,
                spec,
                task,
                reply,
            } => {
                // The channel first: the activator's first events follow its answer at once.
                let previous = self.singleton_tasks.insert(name.clone(), task);
                let token = self.next_token();
                let waiter = SingletonWaiter {
                    name: name.clone(),
                    previous,
                    reply,
                };
                self.singleton_waiters.insert(token, waiter);
                crate::metrics::singleton_registered(&name);
                let input = singleton::Input::Register { token, name, spec };
                self.core.handle(now, Input::Singleton(input));
                self.drain_outputs();
            }
            SingletonCommand::Unregister { name, reply } => {
                let input = singleton::Input::Unregister(name.clone());
                self.core.handle(now, Input::Singleton(input));
                self.drain_outputs();
                self.singleton_tasks.remove(&name);
                let _ = reply.send(());
            }
            SingletonCommand::List { reply } => {
                let s = self.core.singletons();
                let list = s
                    .names()
                    .filter_map(|n| s.info(n))
                    .map(|i| {
                        let task = self.singleton_tasks.get(&i.name);
                        SingletonStatus::from_info(i, now, task)
                    })
                    .collect();
                let _ = reply.send(list);
            }
        }
    }

    /// Every activator stops (the node leaves or shuts down): leaders hand over at once.
    pub(super) fn stop_singletons(&mut self, now: Instant) {
        let input = singleton::Input::UnregisterAll;
        self.core.handle(now, Input::Singleton(input));
        self.drain_outputs();
        self.singleton_tasks.clear();
    }

    pub(super) fn on_singleton_output(&mut self, out: singleton::Output) {
        match out {
            singleton::Output::Event { name, event } => self.on_singleton(name, event),
            singleton::Output::Done { token, result } => {
                let Some(w) = self.singleton_waiters.remove(&token) else {
                    return;
                };
                if result.is_err() {
                    match w.previous {
                        Some(p) => self.singleton_tasks.insert(w.name, p),
                        None => self.singleton_tasks.remove(&w.name),
                    };
                }
                let _ = w.reply.send(result);
            }
            // The stack hands sends out as frames (`Output::Send`).
            singleton::Output::Send { .. } => {}
        }
    }

    fn on_singleton(&mut self, name: String, event: SingletonEvent) {
        match &event {
            SingletonEvent::NowLeader { epoch } => {
                crate::metrics::singleton_leading(&name, Some(*epoch));
                info!(singleton = %name, epoch, "leading singleton {name} at epoch {epoch}")
            }
            SingletonEvent::Shutdown { reason } => {
                crate::metrics::singleton_leading(&name, None);
                info!(singleton = %name, reason = reason.as_str(), "singleton {name}: leadership ends ({})", reason.as_str())
            }
            SingletonEvent::NowFollower { .. } => {}
        }
        if let Some(task) = self.singleton_tasks.get(&name) {
            let _ = task.events.send(event);
        }
    }
}
