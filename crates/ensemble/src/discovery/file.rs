//! The `file` backend: node addresses in a file, re-read at every poll.

use std::path::PathBuf;

use ensemble_proto::discovery::DiscoveredNode;

use super::{Backend, DiscoveryError};

/// A file of `HOST:PORT` addresses separated by whitespace or newlines, re-read at every
/// `get_nodes`. Lines starting with `#` are comments. A missing or unreadable file is a failed
/// `get_nodes` (retried `after_error`); a malformed address fails only its own probe.
#[derive(Debug, Clone)]
pub struct FileBackend {
    path: PathBuf,
}

impl FileBackend {
    /// A backend reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileBackend { path: path.into() }
    }
}

/// The addresses in a node file's text.
pub(crate) fn parse(text: &str) -> Vec<DiscoveredNode> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(DiscoveredNode::addr)
        .collect()
}

#[async_trait::async_trait]
impl Backend for FileBackend {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn get_nodes(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|error| DiscoveryError::File {
                path: self.path.clone(),
                error,
            })?;
        Ok(parse(&text))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_split_on_whitespace_and_newlines() {
        let nodes = super::parse("# the cluster\na:1 b:2\n\n  c:3\t d:4\n");
        let addrs: Vec<_> = nodes.into_iter().map(|n| n.addr).collect();
        assert_eq!(addrs, ["a:1", "b:2", "c:3", "d:4"]);
    }
}
