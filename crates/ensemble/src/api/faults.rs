//! Fault injection on a [`Node`], for tests: partitions that cut named members off from this
//! node, until they are resolved or their time to live passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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
        self.partition(names, None).await
    }

    /// For tests: [`Node::inject_partition`] that resolves itself after `ttl` (a partition
    /// that heals by itself); [`Node::resolve_partition`] ends it earlier.
    pub async fn inject_partition_for(
        &self,
        names: impl IntoIterator<Item = String>,
        ttl: Duration,
    ) -> Result<PartitionRef, Error> {
        self.partition(names, Some(ttl)).await
    }

    /// For tests, Partisan's form: cuts `origin` off from this node for `ttl` (None: until
    /// [`Node::resolve_partition`]). The same as [`Node::inject_partition_for`] with one name;
    /// `origin` must be another member this node knows.
    pub async fn inject_partition_origin(
        &self,
        origin: &str,
        ttl: Option<Duration>,
    ) -> Result<PartitionRef, Error> {
        if origin == self.name() || !self.members().iter().any(|m| m.name == origin) {
            return Err(Error::UnknownNode(origin.to_owned()));
        }
        self.partition([origin.to_owned()], ttl).await
    }

    async fn partition(
        &self,
        names: impl IntoIterator<Item = String>,
        ttl: Option<Duration>,
    ) -> Result<PartitionRef, Error> {
        let names = names.into_iter().collect();
        self.call(|reply| Command::Faults(FaultCommand::InjectPartition { names, ttl, reply }))
            .await
            .map(PartitionRef)
    }

    /// Ends an injected partition.
    pub async fn resolve_partition(&self, partition: PartitionRef) -> Result<(), Error> {
        let id = partition.0;
        self.call(|reply| Command::Faults(FaultCommand::ResolvePartition { id, reply }))
            .await?
    }

    /// The partitions in force now, then again each time they change (an injection, a
    /// resolution, or a partition's time to live passing); ends when the node stops. A
    /// subscriber that reads late sees only the latest set.
    pub fn partition_changes(
        &self,
    ) -> impl futures::Stream<Item = BTreeMap<PartitionRef, BTreeSet<String>>> + Send + Unpin + 'static
    {
        use futures::StreamExt;
        tokio_stream::wrappers::WatchStream::new(self.inner.partitions.clone()).map(|p| {
            p.iter()
                .map(|(k, v)| (PartitionRef(*k), v.clone()))
                .collect()
        })
    }

    /// Partitions in force, by reference.
    pub fn partitions(&self) -> BTreeMap<PartitionRef, BTreeSet<String>> {
        let p = self.inner.partitions.borrow();
        p.iter()
            .map(|(k, v)| (PartitionRef(*k), v.clone()))
            .collect()
    }
}
