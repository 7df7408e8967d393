//! [`TableOptions`]: set or bag, conflict handler, `handle_down` hook, limits.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use ensemble_proto::table::{ConflictHandler, Kind, TableSpec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::{decode, encode};
use crate::command::DownHook;

type TypedConflict<K, V> = Arc<dyn Fn(&K, &V, &V) -> V + Send + Sync>;

/// How a table behaves: set (default) or bag, what resolves conflicts at a join, what runs
/// when a replica goes down, and size limits.
///
/// ```
/// use ensemble::TableOptions;
/// // Keep the later login of a user seen on both sides of a split.
/// let opts = TableOptions::<String, u64>::set()
///     .conflict_handler(|_user, a, b| *a.max(b))
///     .max_records(1_000_000);
/// ```
pub struct TableOptions<K, V> {
    kind: Kind,
    conflict: Option<TypedConflict<K, V>>,
    down: Option<DownHook>,
    max_records: Option<usize>,
    max_bytes: Option<usize>,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Default for TableOptions<K, V> {
    fn default() -> Self {
        Self::set()
    }
}

impl<K, V> TableOptions<K, V> {
    /// A set: one value per key, an insert replaces.
    pub fn set() -> Self {
        TableOptions {
            kind: Kind::Set,
            conflict: None,
            down: None,
            max_records: None,
            max_bytes: None,
            types: PhantomData,
        }
    }

    /// A bag: many distinct values per key, an insert adds. Bags take no conflict handler
    /// (opening one with a handler fails with a clear error).
    pub fn bag() -> Self {
        TableOptions {
            kind: Kind::Bag,
            ..Self::set()
        }
    }

    /// Resolves a key that holds different values on the two sides of a join: `(key, left,
    /// right)` to the value both sides keep. Without one, the later write wins.
    pub fn conflict_handler(mut self, f: impl Fn(&K, &V, &V) -> V + Send + Sync + 'static) -> Self {
        self.conflict = Some(Arc::new(f));
        self
    }

    /// Runs with the node name when a replica of this table goes down (on every survivor).
    /// It runs on the node's driver task: keep it short, or hand the work to a task.
    pub fn handle_down(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.down = Some(Arc::new(f));
        self
    }

    /// Refuses local writes that would bring the replica over `n` records.
    pub fn max_records(mut self, n: usize) -> Self {
        self.max_records = Some(n);
        self
    }

    /// Refuses local writes that would bring the replica over about `n` bytes.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = Some(n);
        self
    }
}

impl<K, V> TableOptions<K, V>
where
    K: Serialize + DeserializeOwned + Send + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn into_spec(self, table: &str) -> (TableSpec, Option<DownHook>) {
        let conflict = self.conflict.map(|f| {
            let table = table.to_string();
            let h: ConflictHandler = Arc::new(move |k: &[u8], l: &[u8], r: &[u8]| {
                let typed = (|| {
                    let key: K = decode(&table, "key", k)?;
                    let left: V = decode(&table, "value", l)?;
                    let right: V = decode(&table, "value", r)?;
                    encode(&table, "value", &f(&key, &left, &right))
                })();
                typed.unwrap_or_else(|e| {
                    warn!("conflict handler of table {table} not run, keeping the left value: {e}");
                    Bytes::copy_from_slice(l)
                })
            });
            h
        });
        let spec = TableSpec {
            kind: self.kind,
            conflict,
            max_records: self.max_records,
            max_bytes: self.max_bytes,
        };
        (spec, self.down)
    }
}
