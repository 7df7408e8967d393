//! Fault injection: the partitions injected by [`crate::Node::inject_partition`], and the one
//! rule of what they cut off. A name in a partition in force is cut off from this node: its
//! messages are dropped, direct or relayed (from it, or through this node to it), messages are
//! not sent to it, its connections are closed and its handshakes dropped, and named messages
//! to it fail as to a node that is not up. The rest of the node asks here: the driver through
//! [`Faults`], the connection tasks through [`Gate`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ensemble_proto::wire::Message;
use tokio::sync::watch;
use tracing::info;

use super::Driver;
use crate::command::FaultCommand;
use crate::error::Error;
use crate::transport::CutOff;

/// The partitions in force: the names of each, by id.
pub(crate) type Partitions = BTreeMap<u64, BTreeSet<String>>;

/// The rule: a name is cut off while it is in a partition in force.
#[inline]
fn cut_off(partitions: &Partitions, name: &str) -> bool {
    partitions.values().any(|p| p.contains(name))
}

/// The partitions in force and the rule of what they cut off.
pub(super) struct Faults {
    partitions: Partitions,
    next_partition: u64,
    /// When partitions injected with a time to live resolve themselves.
    expiries: BTreeMap<u64, Instant>,
}

impl Faults {
    pub(super) fn new() -> Self {
        Faults {
            partitions: BTreeMap::new(),
            next_partition: 1,
            expiries: BTreeMap::new(),
        }
    }

    /// When the next partition with a time to live resolves itself.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.values().min().copied()
    }

    /// True if `name` is cut off from this node: it is in a partition in force.
    #[inline]
    pub(super) fn cut_off(&self, name: &str) -> bool {
        cut_off(&self.partitions, name)
    }

    /// True if a message that came in from `from` must be dropped: `from` is cut off, or the
    /// message is relayed from a node that is (dropped like a direct one).
    #[inline]
    pub(super) fn drops_inbound(&self, from: &str, msg: &Message) -> bool {
        let origin = match msg {
            Message::Relay(r) => self.cut_off(&r.from),
            _ => false,
        };
        self.cut_off(from) || origin
    }

    /// True if a message for `to` must not be sent: `to` is cut off, or the message is a relay
    /// to a node that is.
    #[inline]
    pub(super) fn drops_outbound(&self, to: &str, msg: &Message) -> bool {
        let through = matches!(msg, Message::Relay(r) if self.cut_off(&r.to));
        self.cut_off(to) || through
    }
}

impl Driver {
    pub(super) fn on_fault_command(&mut self, c: FaultCommand) {
        match c {
            FaultCommand::InjectPartition { names, ttl, reply } => {
                let id = self.faults.next_partition;
                self.faults.next_partition += 1;
                match ttl {
                    Some(ttl) => {
                        info!("fault injection: dropping all traffic with {names:?} for {ttl:?} (partition {id})");
                        let at = crate::time::deadline(Instant::now(), ttl);
                        self.faults.expiries.insert(id, at);
                    }
                    None => {
                        info!(
                            "fault injection: dropping all traffic with {names:?} (partition {id})"
                        )
                    }
                }
                self.faults.partitions.insert(id, names);
                self.published
                    .partitions
                    .send_replace(self.faults.partitions.clone());
                let _ = reply.send(id);
            }
            FaultCommand::ResolvePartition { id, reply } => {
                let result = match self.resolve_partition(id) {
                    true => Ok(()),
                    false => Err(Error::UnknownPartition(id)),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Resolves the partitions whose time to live has passed.
    pub(super) fn expire_partitions(&mut self, now: Instant) {
        let due: Vec<u64> = (self.faults.expiries.iter())
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.resolve_partition(id);
        }
    }

    /// Ends partition `id`; false if none is in force.
    fn resolve_partition(&mut self, id: u64) -> bool {
        self.faults.expiries.remove(&id);
        let Some(names) = self.faults.partitions.remove(&id) else {
            return false;
        };
        info!("fault injection: partition {id} with {names:?} resolved");
        self.published
            .partitions
            .send_replace(self.faults.partitions.clone());
        true
    }
}

/// What the connection tasks ask ([`CutOff`]): the partitions as the driver publishes them
/// (for [`crate::Node::partitions`]), under the same rule.
#[derive(Debug)]
pub(crate) struct Gate(watch::Receiver<Partitions>);

impl Gate {
    pub(crate) fn new(published: watch::Receiver<Partitions>) -> Self {
        Gate(published)
    }
}

impl CutOff for Gate {
    fn is_cut_off(&self, name: &str) -> bool {
        cut_off(&self.0.borrow(), name)
    }
}
