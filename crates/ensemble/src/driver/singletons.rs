//! The driver's side of singletons: registrations from [`crate::Node::singleton`] into the
//! core, and each activator's events out to the task that runs its handler.

use std::time::{Instant, SystemTime};

use ensemble_proto::singleton::{SingletonEvent, SingletonInfo};
use tracing::info;

use super::Driver;
use crate::command::{SingletonCommand, SingletonStatus};

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
                // The channel first: the activator's first event comes out of `register`.
                let previous = self.singleton_events.insert(name.clone(), events);
                let result = self
                    .core
                    .with_singletons(now, |s| s.register(now, &name, spec));
                match (&result, previous) {
                    (Err(_), Some(p)) => {
                        self.singleton_events.insert(name, p);
                    }
                    (Err(_), None) => {
                        self.singleton_events.remove(&name);
                    }
                    (Ok(()), _) => {}
                }
                self.drain_outputs();
                let _ = reply.send(result);
            }
            SingletonCommand::Unregister { name, reply } => {
                self.core.with_singletons(now, |s| s.unregister(now, &name));
                self.drain_outputs();
                self.singleton_events.remove(&name);
                let _ = reply.send(());
            }
            SingletonCommand::List { reply } => {
                let s = &self.core.singletons;
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
        self.core.with_singletons(now, |s| s.unregister_all(now));
        self.drain_outputs();
        self.singleton_events.clear();
    }

    pub(super) fn on_singleton(&mut self, name: String, event: SingletonEvent) {
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
