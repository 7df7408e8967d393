//! Effects of handling one input ([`Fx`]), gathered while replicas are borrowed, and what to
//! do when an operation completes ([`Completion`]).

use super::msg::TableMsg;
use super::store::Chunks;
use super::{Output, Reply, TableConfig, TableError};

/// What to do when an operation completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Tell the local caller.
    Token(u64),
    /// Answer a leader request.
    LeaderReply { table: String, to: String, id: u64 },
    /// An automatic re-merge.
    Merge,
}

/// Effects of handling one input, gathered while replicas are borrowed.
pub(crate) struct Fx {
    pub me: String,
    pub origin: u64,
    pub config: TableConfig,
    pub sends: Vec<(String, TableMsg)>,
    pub outs: Vec<Output>,
    pub done: Vec<(Completion, Result<Reply, TableError>)>,
    /// (table, node): a peer's writes showed it is in another segment.
    pub diverged: Vec<(String, String)>,
    /// Tables whose replica left a write made here for [`super::Input::Settle`].
    pub unsettled: Vec<String>,
}

impl Fx {
    pub fn send(&mut self, to: &str, msg: TableMsg) {
        self.sends.push((to.to_string(), msg));
    }

    /// Sends a snapshot's chunks (see [`super::Store::chunks`]).
    pub fn send_chunks(&mut self, to: &str, table: &str, join: u64, chunks: Chunks) {
        for records in chunks.into_iter().filter(|c| !c.is_empty()) {
            self.send(
                to,
                TableMsg::Chunk {
                    table: table.to_string(),
                    join,
                    records,
                },
            );
        }
    }
}
