//! The tracker in a client-server topology. A table replicates only between replicas that are
//! connected, and a client connects only to its few servers, so the tracker's table
//! `ensemble.tracker` is hosted on servers alone. A client keeps a local, unreplicated copy in
//! `ensemble.tracker.copy`, read every second from one of its servers over named messaging
//! under the reserved name `ensemble.tracker` (relayed like any named message), so the
//! tracker's reads and subscriptions work the same on a client, a second late at most.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::topology::{serves, Role};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::messaging::Mailbox;
use crate::api::table::Table;
use crate::error::Error;
use crate::node::Node;

/// The reserved name a server answers tracker reads under, and a client's answers arrive on.
pub(crate) const TRACKER_NAME: &str = "ensemble.tracker";

/// A client's local copy of the servers' tracker rows (never replicated: servers do not host
/// it, and clients do not connect to each other).
pub(crate) const CLIENT_COPY: &str = "ensemble.tracker.copy";

/// Rows per answer, so that an answer fits in a small frame whatever the cluster's size.
const PAGE: usize = 64;

/// The most rows a client copies (a server never has more nodes than this to report).
const MAX_ROWS: usize = 100_000;

/// How long a client waits for one page.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// The messages of a tracker read, between a client and a server.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum TrackerMsg<R> {
    /// Send the rows of nodes named after `after` (from the first if None); `known`: the
    /// digest of the rows the client holds, from this server's last answer.
    Fetch {
        id: u64,
        after: Option<String>,
        known: Option<u64>,
    },
    /// At most [`PAGE`] rows in name order, answering `Fetch` `id`; `more` if others follow;
    /// `digest` of all the rows.
    Rows {
        id: u64,
        rows: Vec<(String, R)>,
        more: bool,
        digest: u64,
    },
    /// The rows are those of digest `known`: nothing to copy.
    Unchanged { id: u64 },
}

/// How long a server reuses one read of its rows for clients' reads.
const CACHE: Duration = Duration::from_millis(500);

/// A server's rows, sorted by name, with their digest.
struct Cached<R> {
    at: std::time::Instant,
    rows: Vec<(String, R)>,
    digest: u64,
}

impl<R: Row> Cached<R> {
    fn new(mut rows: Vec<(String, R)>) -> Self {
        use std::hash::{Hash, Hasher};
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        postcard::to_allocvec(&rows)
            .unwrap_or_default()
            .hash(&mut h);
        Cached {
            at: std::time::Instant::now(),
            rows,
            digest: h.finish(),
        }
    }

    /// The answer to `Fetch { id, after, known }`.
    fn answer(&self, id: u64, after: Option<&str>, known: Option<u64>) -> TrackerMsg<R> {
        if after.is_none() && known == Some(self.digest) {
            return TrackerMsg::Unchanged { id };
        }
        let (rows, more) = page(&self.rows, after);
        TrackerMsg::Rows {
            id,
            rows,
            more,
            digest: self.digest,
        }
    }
}

/// What a row must be to travel: the tracker's `NodeRow` (generic here so that this module
/// does not import the tracker's).
pub(crate) trait Row:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + 'static
{
}
impl<R: Serialize + DeserializeOwned + Clone + PartialEq + Send + 'static> Row for R {}

/// How a server reads its tracker rows.
pub(crate) type ReadRows<R> = fn(Node) -> BoxFuture<'static, Result<Vec<(String, R)>, Error>>;

fn encode<R: Row>(msg: &TrackerMsg<R>) -> Bytes {
    Bytes::from(postcard::to_allocvec(msg).expect("tracker messages encode"))
}

/// True if this node hosts `ensemble.tracker`: every node but a client.
pub(crate) fn hosts_tracker(node: &Node) -> bool {
    node.inner.role != Some(Role::Client)
}

/// The page of `rows` (sorted by name) a `Fetch` after `after` gets, and whether more follow.
fn page<R: Clone>(rows: &[(String, R)], after: Option<&str>) -> (Vec<(String, R)>, bool) {
    let start = after.map_or(0, |a| rows.partition_point(|(k, _)| k.as_str() <= a));
    let rest = &rows[start..];
    let n = rest.len().min(PAGE);
    (rest[..n].to_vec(), rest.len() > PAGE)
}

/// On a server of a client-server topology: answers clients' tracker reads until the node
/// stops.
pub(crate) async fn serve<R: Row>(node: &Node, read: ReadRows<R>) -> Result<(), Error> {
    let mut mailbox = node.register_any(TRACKER_NAME).await?;
    let weak = node.downgrade();
    tokio::spawn(async move {
        let mut cache: Option<Cached<R>> = None;
        while let Some(env) = mailbox.recv().await {
            let Some(node) = weak.upgrade() else { return };
            let Ok(TrackerMsg::<R>::Fetch { id, after, known }) =
                postcard::from_bytes(&env.payload)
            else {
                tracing::debug!("a malformed tracker read from {} was dropped", env.from);
                continue;
            };
            // One read of the table serves every client for a while.
            if cache.as_ref().is_none_or(|c| c.at.elapsed() >= CACHE) {
                match read(node.clone()).await {
                    Ok(rows) => cache = Some(Cached::new(rows)),
                    Err(e) => {
                        tracing::debug!("tracker read from {} not answered: {e}", env.from);
                        continue;
                    }
                }
            }
            let Some(c) = cache.as_ref() else { continue };
            let reply = encode(&c.answer(id, after.as_deref(), known));
            if let Err(e) = node.cast_reserved(&env.from, TRACKER_NAME, reply).await {
                tracing::debug!("tracker read from {} not answered: {e}", env.from);
            }
        }
    });
    Ok(())
}

/// A client's reader of its servers' tracker rows.
pub(crate) struct Copier {
    mailbox: Mailbox,
    next_id: u64,
    /// The server last copied from, and the digest of its rows then.
    known: Option<(String, u64)>,
}

impl Copier {
    pub(crate) async fn start(node: &Node) -> Result<Copier, Error> {
        let mailbox = node.register_any(TRACKER_NAME).await?;
        Ok(Copier {
            mailbox,
            next_id: 0,
            known: None,
        })
    }

    /// Reads every row from one of this client's servers and makes `copy` match them.
    pub(crate) async fn refresh<R: Row>(
        &mut self,
        node: &Node,
        copy: &Table<String, R>,
    ) -> Result<(), Error> {
        let server = server_of(node).await?;
        let known = (self.known.take())
            .filter(|(s, _)| *s == server)
            .map(|(_, d)| d);
        let mut rows = BTreeMap::new();
        let mut after = None;
        let mut digests = BTreeSet::new();
        loop {
            let fetched = self.fetch::<R>(node, &server, after.clone(), known).await?;
            let Some((page, more, digest)) = fetched else {
                // Unchanged since the last copy.
                self.known = known.map(|d| (server, d));
                return Ok(());
            };
            digests.insert(digest);
            let last = page.last().map(|(k, _)| k.clone());
            rows.extend(page);
            if rows.len() > MAX_ROWS {
                return Err(Error::Config(format!(
                    "{server} reports more than {MAX_ROWS} tracker rows; the copy is not updated"
                )));
            }
            match (more, last) {
                (true, Some(last)) if after.as_ref() < Some(&last) => after = Some(last),
                _ => break,
            }
        }
        let current: BTreeMap<String, R> = copy.snapshot()?.into_iter().collect();
        let writes: Vec<(String, R)> = rows
            .iter()
            .filter(|(k, r)| current.get(*k) != Some(*r))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        let gone: Vec<String> = current
            .keys()
            .filter(|k| !rows.contains_key(*k))
            .cloned()
            .collect();
        if !writes.is_empty() {
            copy.insert_many(&writes).await?;
        }
        if !gone.is_empty() {
            copy.delete_many(&gone).await?;
        }
        // Rows that changed between two pages are read whole again next time.
        if digests.len() == 1 {
            self.known = digests.pop_first().map(|d| (server, d));
        }
        Ok(())
    }

    /// One page from `server`.
    async fn fetch<R: Row>(
        &mut self,
        node: &Node,
        server: &str,
        after: Option<String>,
        known: Option<u64>,
    ) -> Result<Option<(Vec<(String, R)>, bool, u64)>, Error> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let request = encode(&TrackerMsg::<R>::Fetch { id, after, known });
        node.cast_reserved(server, TRACKER_NAME, request).await?;
        let answer = async {
            while let Some(env) = self.mailbox.recv().await {
                match postcard::from_bytes(&env.payload) {
                    Ok(TrackerMsg::Rows {
                        id: got,
                        rows,
                        more,
                        digest,
                    }) if got == id && env.from == server && rows.len() <= PAGE => {
                        return Ok(Some((rows, more, digest)));
                    }
                    Ok(TrackerMsg::Unchanged { id: got }) if got == id && env.from == server => {
                        return Ok(None);
                    }
                    // An answer to an earlier request that timed out, or from elsewhere.
                    Ok(_) => continue,
                    Err(_) => tracing::debug!("a malformed tracker answer from {}", env.from),
                }
            }
            Err(Error::Stopped)
        };
        tokio::time::timeout(ANSWER_WAIT, answer)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    node: server.to_string(),
                    name: TRACKER_NAME.to_string(),
                    after: ANSWER_WAIT,
                })
            })
    }
}

/// The server a client reads from: one it is connected to, else any live server (relayed).
async fn server_of(node: &Node) -> Result<String, Error> {
    let members = node.members();
    let live_server = |name: &str| {
        members
            .iter()
            .any(|m| m.name == name && m.status.is_up() && serves(m))
    };
    let connected = node.connections().await?;
    if let Some(s) = connected.into_iter().find(|s| live_server(s)) {
        return Ok(s);
    }
    members
        .iter()
        .find(|m| m.name != node.name() && m.status.is_up() && serves(m))
        .map(|m| m.name.clone())
        .ok_or_else(|| Error::UnknownNode("any server".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<(String, u64)> {
        (0..n).map(|i| (format!("n{i:04}"), i as u64)).collect()
    }

    #[test]
    fn pages_cover_every_row_once_in_order() {
        let all = rows(PAGE * 2 + 3);
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (p, more) = page(&all, after.as_deref());
            assert!(p.len() <= PAGE);
            after = p.last().map(|(k, _)| k.clone());
            got.extend(p);
            if !more {
                break;
            }
        }
        assert_eq!(got, all);
        assert_eq!(page(&all, Some("zzz")), (vec![], false));
    }

    #[test]
    fn a_client_holding_the_current_rows_is_told_they_are_unchanged() {
        let c = Cached::new(rows(3));
        let digest = match c.answer(1, None, None) {
            TrackerMsg::Rows { rows, digest, .. } => {
                assert_eq!(rows.len(), 3);
                digest
            }
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            c.answer(2, None, Some(digest)),
            TrackerMsg::Unchanged { id: 2 }
        ));
        let changed = Cached::new(rows(4));
        assert!(matches!(
            changed.answer(3, None, Some(digest)),
            TrackerMsg::Rows { .. }
        ));
    }
}
