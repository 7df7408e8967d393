//! Fault injection on a [`Node`], for tests: partitions that cut named members off from this
//! node, until they are resolved.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, FaultCommand};
use crate::error::Error;
use crate::node::Node;

/// A reference to a partition injected with [`Node::inject_partition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionRef(pub u64);

impl Node {
    /// For tests: drops all traffic with the named members at this node's transport (both
    /// directions, new connections refused) until [`Node::resolve_partition`].
    pub async fn inject_partition(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Result<PartitionRef, Error> {
        let names = names.into_iter().collect();
        self.call(|reply| Command::Faults(FaultCommand::InjectPartition { names, reply }))
            .await
            .map(PartitionRef)
    }

    /// Ends an injected partition.
    pub async fn resolve_partition(&self, partition: PartitionRef) -> Result<(), Error> {
        let id = partition.0;
        self.call(|reply| Command::Faults(FaultCommand::ResolvePartition { id, reply }))
            .await?
    }

    /// Partitions in force, by reference.
    pub fn partitions(&self) -> BTreeMap<PartitionRef, BTreeSet<String>> {
        let p = self.inner.partitions.borrow();
        p.iter()
            .map(|(k, v)| (PartitionRef(*k), v.clone()))
            .collect()
    }
}
