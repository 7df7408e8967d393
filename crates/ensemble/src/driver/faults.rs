//! Fault injection: the partitions injected by [`crate::Node::inject_partition`], and the one
//! rule of what they cut off. A name in a partition in force is cut off from this node: its
//! messages are dropped, direct or relayed (from it, or through this node to it), messages are
//! not sent to it, its connections are closed and its handshakes dropped, and named messages
//! to it fail as to a node that is not up. The rest of the node asks here.

use std::collections::{BTreeMap, BTreeSet};

use ensemble_proto::wire::Message;
use tracing::info;

use super::Driver;
use crate::command::FaultCommand;
use crate::error::Error;

/// The partitions in force and the rule of what they cut off.
pub(super) struct Faults {
    /// The names of each partition, by id.
    partitions: BTreeMap<u64, BTreeSet<String>>,
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
        self.partitions.values().any(|p| p.contains(name))
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
                self.share_partitions();
                let _ = reply.send(id);
            }
            FaultCommand::ResolvePartition { id, reply } => {
                let result = match self.faults.partitions.remove(&id) {
                    Some(names) => {
                        info!("fault injection: partition {id} with {names:?} resolved");
                        self.published
                            .partitions
                            .send_replace(self.faults.partitions.clone());
                        self.share_partitions();
                        Ok(())
                    }
                    None => Err(Error::UnknownPartition(id)),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// The connection tasks drop handshakes from partitioned names.
    fn share_partitions(&self) {
        let all = self.faults.partitions.values().flatten().cloned().collect();
        *self
            .shared
            .partitioned
            .write()
            .unwrap_or_else(|e| e.into_inner()) = all;
    }
}
