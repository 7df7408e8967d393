//! Writes of a [`Table`]: synchronous ones return once every replica has them (or went
//! down); asynchronous ones return a [`RequestId`] to wait on later, many under one deadline.
//! Leader operations go through one replica so they are decided once for the cluster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ensemble_proto::table::{LeaderOp, LeaderResult, Reply, TableError, WriteOp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::codec::Batch;
use super::{decode, encode, Table};
use crate::command::{Command, DriverMsg, TableCommand};
use crate::error::Error;
use crate::limits;

/// An asynchronous write in flight; wait for it with [`Table::wait_response`] or
/// [`Table::wait_responses`].
#[derive(Debug)]
pub struct RequestId {
    rx: oneshot::Receiver<Result<Reply, TableError>>,
}

/// Keeps the table's local writes paused (queued, applied in order later) until dropped.
/// Dropping it, or the task that holds it ending, unpauses.
#[derive(Debug)]
pub struct PauseGuard {
    table: String,
    id: u64,
    driver: tokio::sync::mpsc::Sender<DriverMsg>,
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let cmd = TableCommand::Unpause {
            table: std::mem::take(&mut self.table),
            id: self.id,
        };
        let msg = DriverMsg::Command(Command::Table(cmd));
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) = self.driver.try_send(msg) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let driver = self.driver.clone();
                    rt.spawn(async move { driver.send(msg).await });
                }
                // Outside a runtime this thread may wait for room.
                Err(_) => {
                    let _ = self.driver.blocking_send(msg);
                }
            }
        }
    }
}

static PAUSES: AtomicU64 = AtomicU64::new(1);

fn written(r: Reply) -> Result<(), Error> {
    match r {
        Reply::Written => Ok(()),
        other => unreachable!("a write completes with Written, not {other:?}"),
    }
}

impl<K, V> Table<K, V>
where
    K: Serialize + DeserializeOwned + Send + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    fn key(&self, k: &K) -> Result<bytes::Bytes, Error> {
        encode(&self.name, "key", k)
    }

    fn value(&self, v: &V) -> Result<bytes::Bytes, Error> {
        encode(&self.name, "value", v)
    }

    /// Refuses a write whose replication frame would be over the largest frame.
    fn fits(&self, ops: &[WriteOp]) -> Result<(), Error> {
        let size = limits::table_write_len(&self.name, ops);
        limits::fits("a table write", size, self.node.inner.max_frame)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), Error> {
        self.fits(&ops)?;
        let table = self.name.to_string();
        written(
            self.done(|reply| TableCommand::Write { table, ops, reply })
                .await?,
        )
    }

    async fn write_async(&self, ops: Vec<WriteOp>) -> Result<RequestId, Error> {
        self.fits(&ops)?;
        let table = self.name.to_string();
        let rx = self
            .start(|reply| TableCommand::Write { table, ops, reply })
            .await?;
        Ok(RequestId { rx })
    }

    /// One insert per record, every key and value encoded into one shared buffer.
    fn inserts(&self, records: &[(K, V)]) -> Result<Vec<WriteOp>, Error> {
        let mut batch = Batch::new(&self.name, 2 * records.len());
        for (k, v) in records {
            batch.push("key", k)?;
            batch.push("value", v)?;
        }
        let mut encoded = batch.finish();
        let mut ops = Vec::with_capacity(records.len());
        while let (Some(k), Some(v)) = (encoded.next(), encoded.next()) {
            ops.push(WriteOp::Insert(k, v));
        }
        Ok(ops)
    }

    fn deletes(&self, keys: &[K]) -> Result<Vec<WriteOp>, Error> {
        let mut batch = Batch::new(&self.name, keys.len());
        for k in keys {
            batch.push("key", k)?;
        }
        Ok(batch.finish().map(WriteOp::Delete).collect())
    }

    /// Inserts (a set: replaces) `key`; returns when every replica has it or went down.
    pub async fn insert(&self, key: K, value: V) -> Result<(), Error> {
        self.write(self.inserts(&[(key, value)])?).await
    }

    /// Inserts many records in one replicated write.
    pub async fn insert_many(&self, records: &[(K, V)]) -> Result<(), Error> {
        self.write(self.inserts(records)?).await
    }

    /// Deletes `key` (a bag: all its values).
    pub async fn delete(&self, key: &K) -> Result<(), Error> {
        self.write(self.deletes(std::slice::from_ref(key))?).await
    }

    /// Deletes many keys in one replicated write.
    pub async fn delete_many(&self, keys: &[K]) -> Result<(), Error> {
        self.write(self.deletes(keys)?).await
    }

    /// Deletes `key` only where it holds `value` (a bag: that one value).
    pub async fn delete_object(&self, key: &K, value: &V) -> Result<(), Error> {
        self.write(vec![WriteOp::DeleteObject(
            self.key(key)?,
            self.value(value)?,
        )])
        .await
    }

    /// [`Table::insert`] without waiting: applied here at once, replicated in the background.
    pub async fn insert_async(&self, key: K, value: V) -> Result<RequestId, Error> {
        self.write_async(self.inserts(&[(key, value)])?).await
    }

    /// [`Table::insert_many`] without waiting.
    pub async fn insert_many_async(&self, records: &[(K, V)]) -> Result<RequestId, Error> {
        self.write_async(self.inserts(records)?).await
    }

    /// [`Table::delete`] without waiting.
    pub async fn delete_async(&self, key: &K) -> Result<RequestId, Error> {
        self.write_async(self.deletes(std::slice::from_ref(key))?)
            .await
    }

    /// [`Table::delete_many`] without waiting.
    pub async fn delete_many_async(&self, keys: &[K]) -> Result<RequestId, Error> {
        self.write_async(self.deletes(keys)?).await
    }

    /// [`Table::delete_object`] without waiting.
    pub async fn delete_object_async(&self, key: &K, value: &V) -> Result<RequestId, Error> {
        self.write_async(vec![WriteOp::DeleteObject(
            self.key(key)?,
            self.value(value)?,
        )])
        .await
    }

    /// Waits for an asynchronous write, at most `timeout`.
    pub async fn wait_response(&self, id: RequestId, timeout: Duration) -> Result<(), Error> {
        let mut all = self.wait_responses(vec![id], timeout).await;
        all.pop().expect("one id, one result")
    }

    /// Waits for many asynchronous writes under one deadline; one result per id, in order
    /// (`Error::Table(TableError::Timeout)` for those still in flight at the deadline).
    pub async fn wait_responses(
        &self,
        ids: Vec<RequestId>,
        timeout: Duration,
    ) -> Vec<Result<(), Error>> {
        let deadline = crate::time::tokio_deadline(timeout);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let r = match tokio::time::timeout_at(deadline, id.rx).await {
                Ok(Ok(Ok(reply))) => written(reply),
                Ok(Ok(Err(e))) => Err(e.into()),
                Ok(Err(_)) => Err(Error::Stopped),
                Err(_) => Err(TableError::Timeout(Vec::new()).into()),
            };
            out.push(r);
        }
        out
    }

    async fn leader(&self, op: LeaderOp) -> Result<LeaderResult, Error> {
        let (table, timeout) = (self.name.to_string(), self.timeout);
        match self
            .done(|reply| TableCommand::Leader {
                table,
                op,
                timeout,
                reply,
            })
            .await?
        {
            Reply::Leader(r) => Ok(r),
            other => unreachable!("a leader operation completes with Leader, not {other:?}"),
        }
    }

    /// Inserts `key` only if no replica holds it (decided by the table's leader): true if
    /// inserted. Retried with back-off across a leader change until the handle's timeout.
    pub async fn insert_new(&self, key: K, value: V) -> Result<bool, Error> {
        let op = LeaderOp::InsertNew {
            key: self.key(&key)?,
            value: self.value(&value)?,
        };
        Ok(self.leader(op).await? == LeaderResult::Inserted)
    }

    /// Like [`Table::insert_new`], and returns the value the key holds afterwards with
    /// whether this call inserted it.
    pub async fn insert_new_or_lookup(&self, key: K, value: V) -> Result<(V, bool), Error> {
        let op = LeaderOp::InsertNewOrLookup {
            key: self.key(&key)?,
            value: self.value(&value)?,
        };
        match self.leader(op).await? {
            LeaderResult::Exists(v) => Ok((decode(&self.name, "value", &v)?, false)),
            _ => Ok((value, true)),
        }
    }

    /// Inserts through the leader, so that such inserts are applied in one order everywhere.
    pub async fn insert_serial(&self, key: K, value: V) -> Result<(), Error> {
        let op = LeaderOp::InsertSerial {
            records: vec![(self.key(&key)?, self.value(&value)?)],
        };
        self.leader(op).await.map(|_| ())
    }

    /// Pauses local writes until the guard is dropped (they queue and apply in order).
    pub async fn pause(&self) -> Result<PauseGuard, Error> {
        let id = PAUSES.fetch_add(1, Ordering::Relaxed);
        // Armed before the request goes out: if this future is dropped half-way, the guard's
        // drop unpauses (an unpause of a pause that never happened does nothing).
        let guard = PauseGuard {
            table: self.name.to_string(),
            id,
            driver: self.node.driver_sender(),
        };
        let table = self.name.to_string();
        self.node
            .call(|reply| Command::Table(TableCommand::Pause { table, id, reply }))
            .await??;
        Ok(guard)
    }

    /// A handle whose leader operations wait at most `timeout` (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
