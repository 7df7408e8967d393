//! Replicated tables: [`Node::table`] opens a typed table whose records every replica holds.
//! Reads are local (no message, no await); writes apply here and on every replica.
//!
//! Keys and values are any serde types, encoded with postcard. The protocol (joins, conflict
//! handler, leader operations, re-merge after splits) is [`ensemble_proto::table`].

mod codec;
mod options;
mod write;

use std::marker::PhantomData;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::table::{Reply, Store, TableError, TableInfo};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::command::{ChangeBatch, Command, Done, DriverMsg, Opened, TableCommand};
use crate::error::Error;
use crate::limits;
use crate::node::Node;
pub(crate) use codec::{decode, encode};
pub use options::TableOptions;
pub use write::{PauseGuard, RequestId};

/// How long table operations wait by default for replicas, a leader or a join.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A change of a table's local replica: `old` and `new` are `None` when absent (a bag reports
/// one change per value).
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange<K, V> {
    /// The table.
    pub table: String,
    /// The key.
    pub key: K,
    /// The value before.
    pub old: Option<V>,
    /// The value after.
    pub new: Option<V>,
}

/// A typed handle on a replicated table; cheap to clone.
pub struct Table<K, V> {
    name: Arc<str>,
    node: Node,
    store: Arc<RwLock<Store>>,
    changes: broadcast::Sender<ChangeBatch>,
    timeout: Duration,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            name: self.name.clone(),
            node: self.node.clone(),
            store: self.store.clone(),
            changes: self.changes.clone(),
            timeout: self.timeout,
            types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("name", &self.name).finish()
    }
}

impl Node {
    /// Opens the replicated table `name` on this node, creating its replica on first use. It
    /// joins the replicas on connected nodes that host the same table by itself (and again
    /// after a split heals). Opening it again gives another handle on the same replica; the
    /// kind (set or bag) must match.
    ///
    /// Names are 1 to [`crate::MAX_TABLE_NAME`] bytes without control characters
    /// ([`Error::Config`] otherwise); names starting with [`crate::RESERVED_TABLE_PREFIX`]
    /// (`ensemble.`) are Ensemble's own and refused with [`Error::ReservedName`]. A write
    /// whose replication frame would not fit in [`crate::Config::max_frame_size`] (many
    /// records at once) fails with [`Error::TooLarge`] before anything is sent.
    pub async fn table<K, V>(
        &self,
        name: &str,
        options: TableOptions<K, V>,
    ) -> Result<Table<K, V>, Error>
    where
        K: Serialize + DeserializeOwned + Send + 'static,
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        limits::table_name_ok(name, false)?;
        self.open_table(name, options).await
    }

    /// [`Node::table`] for Ensemble's own tables (the tracker's): names starting with
    /// [`crate::RESERVED_TABLE_PREFIX`] are allowed.
    pub(crate) async fn open_table<K, V>(
        &self,
        name: &str,
        options: TableOptions<K, V>,
    ) -> Result<Table<K, V>, Error>
    where
        K: Serialize + DeserializeOwned + Send + 'static,
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        limits::table_name_ok(name, true)?;
        let (spec, down) = options.into_spec(name);
        let n = name.to_owned();
        let Opened { store, changes } = self
            .call(|reply| {
                Command::Table(TableCommand::Create {
                    name: n,
                    spec,
                    down,
                    reply,
                })
            })
            .await??;
        Ok(Table {
            name: name.into(),
            node: self.clone(),
            store,
            changes,
            timeout: DEFAULT_TIMEOUT,
            types: PhantomData,
        })
    }

    /// Joins this node's replica of `table` with `node`'s, whatever its types (discovery's
    /// table joiner uses this; see [`crate::discovery::DiscoveryOptions::table_joiner`]).
    pub async fn join_table(
        &self,
        table: &str,
        node: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (table, node) = (table.to_string(), node.to_string());
        self.call(|reply| {
            Command::Table(TableCommand::Join {
                table,
                node,
                timeout,
                reply,
            })
        })
        .await??;
        Ok(())
    }

    /// A [`crate::discovery::TableJoiner`] that joins replicated tables of this node, for
    /// [`crate::discovery::DiscoveryOptions::table_joiner`].
    pub fn table_joiner(&self, timeout: Duration) -> crate::discovery::TableJoiner {
        let node = self.clone();
        std::sync::Arc::new(move |member: String, table: String| {
            let node = node.clone();
            Box::pin(async move {
                node.join_table(&table, &member, timeout)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
    }

    /// The joins of tables that this node coordinates, from now on: each completed join and
    /// each automatic re-merge's outcome. A subscriber that falls more than 1024 events
    /// behind skips the oldest.
    pub fn table_joins(
        &self,
    ) -> impl futures::Stream<Item = crate::command::TableJoinEvent> + Send + Unpin + 'static {
        crate::api::membership::skip_lagged(self.inner.table_joins.resubscribe(), "table join")
    }

    /// The names of the tables this node hosts.
    pub async fn tables(&self) -> Result<Vec<String>, Error> {
        self.call(|reply| Command::Table(TableCommand::List { reply }))
            .await
    }

    /// The state of this node's replica of `table`, whatever its types; `None` if this node
    /// hosts no replica of it.
    pub(crate) async fn table_info(&self, table: &str) -> Result<Option<TableInfo>, Error> {
        let table = table.to_string();
        self.call(|reply| Command::Table(TableCommand::Info { table, reply }))
            .await
    }
}

impl<K, V> Table<K, V>
where
    K: Serialize + DeserializeOwned + Send + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` (a bag: the first of its values), read locally.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let k = encode(&self.name, "key", key)?;
        let store = self.read();
        store
            .get(&k)
            .map(|v| decode(&self.name, "value", v))
            .transpose()
    }

    /// Every value under `key` (a set: at most one), read locally.
    pub fn get_all(&self, key: &K) -> Result<Vec<V>, Error> {
        let k = encode(&self.name, "key", key)?;
        let vs = self.read().get_all(&k);
        vs.iter().map(|v| decode(&self.name, "value", v)).collect()
    }

    /// True if `key` holds a value here.
    pub fn contains(&self, key: &K) -> Result<bool, Error> {
        let k = encode(&self.name, "key", key)?;
        Ok(self.read().get(&k).is_some())
    }

    /// Live records here (a bag: values).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True if no record is live here.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Estimated bytes of the local replica's records.
    pub fn memory(&self) -> usize {
        self.read().memory()
    }

    /// Every record, in the order of the encoded keys.
    pub fn snapshot(&self) -> Result<Vec<(K, V)>, Error> {
        let store = self.read();
        let mut out = Vec::with_capacity(store.len());
        let mut err = None;
        store.for_each(|k, v, _| {
            if err.is_some() {
                return;
            }
            match (decode(&self.name, "key", k), decode(&self.name, "value", v)) {
                (Ok(k), Ok(v)) => out.push((k, v)),
                (Err(e), _) | (_, Err(e)) => err = Some(e),
            }
        });
        err.map_or(Ok(out), Err)
    }

    /// The raw (encoded) records, for tools that do not know the types.
    pub fn raw_snapshot(&self) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::new();
        self.read()
            .for_each(|k, v, _| out.push((Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))));
        out
    }

    /// A stream of the local replica's changes, whatever wrote them (this node, a replica, a
    /// join). A subscriber that falls more than 4096 batches behind misses some and is told
    /// by a `Lagged` error.
    pub fn subscribe(&self) -> TableChanges<K, V> {
        // From now on the replica reports its changes (it does not while nobody listens).
        self.store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .watched = true;
        TableChanges {
            table: self.name.clone(),
            rx: self.changes.subscribe(),
            pending: std::collections::VecDeque::new(),
            types: PhantomData,
        }
    }

    /// The replica's state: members of its segment, leader, size, memory, join id, down
    /// history.
    pub async fn info(&self) -> Result<TableInfo, Error> {
        self.node
            .table_info(&self.name)
            .await?
            .ok_or_else(|| Error::Table(TableError::Unknown(self.name.to_string())))
    }

    /// Joins this replica's segment with `node`'s (usually automatic: replicas on connected
    /// nodes join by themselves). Returns when both segments are one.
    pub async fn join(&self, node: &str, timeout: Duration) -> Result<(), Error> {
        let (table, node) = (self.name.to_string(), node.to_string());
        self.done(|reply| TableCommand::Join {
            table,
            node,
            timeout,
            reply,
        })
        .await?;
        Ok(())
    }

    /// Returns when every replica has answered a ping (and so has applied every write made here
    /// before it), or went down.
    pub async fn ping_all(&self, timeout: Duration) -> Result<(), Error> {
        let table = self.name.to_string();
        self.done(|reply| TableCommand::PingAll {
            table,
            timeout,
            reply,
        })
        .await?;
        Ok(())
    }

    /// Sends a command and waits for its completion.
    async fn done(&self, f: impl FnOnce(Done) -> TableCommand) -> Result<Reply, Error> {
        Ok(self.node.call(|reply| Command::Table(f(reply))).await??)
    }

    /// Sends a command; its completion arrives on the returned receiver.
    async fn start(
        &self,
        f: impl FnOnce(Done) -> TableCommand,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Reply, TableError>>, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.node
            .driver_sender()
            .send(DriverMsg::Command(Command::Table(f(tx))))
            .await
            .map_err(|_| Error::Stopped)?;
        Ok(rx)
    }
}

/// The stream [`Table::subscribe`] returns.
pub struct TableChanges<K, V> {
    table: Arc<str>,
    rx: broadcast::Receiver<ChangeBatch>,
    pending: std::collections::VecDeque<ensemble_proto::table::Change>,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K: DeserializeOwned, V: DeserializeOwned> TableChanges<K, V> {
    /// The next change; `Err(Error::Lagged(n))` if `n` batches were missed, `Ok(None)` once the
    /// node stopped.
    pub async fn recv(&mut self) -> Result<Option<TableChange<K, V>>, Error> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                let t = &self.table;
                return Ok(Some(TableChange {
                    table: t.to_string(),
                    key: decode(t, "key", &c.key)?,
                    old: c.old.map(|v| decode(t, "value", &v)).transpose()?,
                    new: c.new.map(|v| decode(t, "value", &v)).transpose()?,
                }));
            }
            match self.rx.recv().await {
                Ok(batch) => self.pending.extend(batch.iter().cloned()),
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(Error::Lagged(n)),
            }
        }
    }
}
