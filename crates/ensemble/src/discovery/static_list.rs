//! The `static` backend: a fixed list of addresses.

use ensemble_proto::discovery::DiscoveredNode;

use super::{Backend, DiscoveryError};

/// A fixed list of `HOST:PORT` addresses (the agent's `--join` flags feed it).
#[derive(Debug, Clone)]
pub struct StaticBackend {
    nodes: Vec<String>,
}

impl StaticBackend {
    /// A backend that always answers these addresses.
    pub fn new(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        StaticBackend {
            nodes: nodes.into_iter().map(Into::into).collect(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for StaticBackend {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn get_nodes(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        Ok(self.nodes.iter().map(DiscoveredNode::addr).collect())
    }
}
