//! Fault injection: the partitions injected by [`crate::Node::inject_partition`], and the one
//! rule of what they cut off. A name in a partition in force is cut off from this node: its
//! messages are dropped, direct or relayed (from it, or through this node to it), messages are
//! not sent to it, its connections are closed and its handshakes dropped, and named messages
//! to it fail as to a node that is not up. The rest of the node asks here: the driver through
//! [`Faults`], the connection tasks through [`Gate`].

use std::collections::{BTreeMap, BTreeSet};

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
}

impl Faults {
    pub(super) fn new() -> Self {
        Faults {
            partitions: BTreeMap::new(),
            next_partition: 1,
        }
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
            FaultCommand::InjectPartition { names, reply } => {
                let id = self.faults.next_partition;
                self.faults.next_partition += 1;
                info!("fault injection: dropping all traffic with {names:?} (partition {id})");
                self.faults.partitions.insert(id, names);
                self.published
                    .partitions
                    .send_replace(self.faults.partitions.clone());
                let _ = reply.send(id);
            }
            FaultCommand::ResolvePartition { id, reply } => {
                let result = match self.faults.partitions.remove(&id) {
                    Some(names) => {
                        info!("fault injection: partition {id} with {names:?} resolved");
                        self.published
                            .partitions
                            .send_replace(self.faults.partitions.clone());
                        Ok(())
                    }
                    None => Err(Error::UnknownPartition(id)),
                };
                let _ = reply.send(result);
            }
        }
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
