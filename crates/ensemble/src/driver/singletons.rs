//! The driver's side of singletons: registrations from [`crate::Node::singleton`] into the
//! core, and each activator's events out to the task that runs its handler.

use std::time::{Instant, SystemTime};

use ensemble_proto::singleton::{self, SingletonError, SingletonEvent, SingletonInfo};
use ensemble_proto::stack::Input;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::Driver;
use crate::command::{SingletonCommand, SingletonStatus};

/// A registration waiting for the core's answer (`Done { token }`).
pub(super) struct SingletonWaiter {
    name: String,
    /// The events channel the name had before, put back if the registration is refused.
    previous: Option<mpsc::UnboundedSender<SingletonEvent>>,
    reply: oneshot::Sender<Result<(), SingletonError>>,
}

impl SingletonStatus {
    fn from_info(i: SingletonInfo, now: Instant) -> Self {
        let wall = SystemTime::now();
        let since_ms = i.since.and_then(|s| {
            let at = wall.checked_sub(now.saturating_duration_since(s))?;
            let ms = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
            u64::try_from(ms).ok()
        });
        SingletonStatus {
            name: i.name,
            role: i.role,
            leader: i.leader,
            epoch: i.epoch,
            since_ms,
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
                events,
                reply,
            } => {
                // The channel first: the activator's first events follow its answer at once.
                let previous = self.singleton_events.insert(name.clone(), events);
                let token = self.next_token();
                let waiter = SingletonWaiter {
                    name: name.clone(),
                    previous,
                    reply,
                };
                self.singleton_waiters.insert(token, waiter);
                let input = singleton::Input::Register { token, name, spec };
                self.core.handle(now, Input::Singleton(input));
                self.drain_outputs();
            }
            SingletonCommand::Unregister { name, reply } => {
                let input = singleton::Input::Unregister(name.clone());
                self.core.handle(now, Input::Singleton(input));
                self.drain_outputs();
                self.singleton_events.remove(&name);
                let _ = reply.send(());
            }
            SingletonCommand::List { reply } => {
                let s = self.core.singletons();
                let list = s
                    .names()
                    .filter_map(|n| s.info(n))
                    .map(|i| SingletonStatus::from_info(i, now))
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
        self.singleton_events.clear();
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
                        Some(p) => self.singleton_events.insert(w.name, p),
                        None => self.singleton_events.remove(&w.name),
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
                info!(singleton = %name, epoch, "leading singleton {name} at epoch {epoch}")
            }
            SingletonEvent::Shutdown { reason } => {
                info!(singleton = %name, "singleton {name}: leadership ends ({})", reason.as_str())
            }
            SingletonEvent::NowFollower { .. } => {}
        }
        if let Some(tx) = self.singleton_events.get(&name) {
            let _ = tx.send(event);
        }
    }
}
