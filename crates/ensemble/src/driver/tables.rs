//! The driver's side of replicated tables: commands from [`crate::Table`] handles into the
//! core, and the core's completions, changes and hooks back out.

use std::sync::Arc;
use std::time::Instant;

use ensemble_proto::table::{self, TableError, Tables};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::Driver;
use crate::command::{Done, Opened, TableCommand};

/// How many change batches a slow subscriber may lag behind before it misses some.
const CHANGES_CAPACITY: usize = 4096;

impl Driver {
    pub(super) fn on_table_command(&mut self, now: Instant, c: TableCommand) {
        match c {
            TableCommand::Create {
                name,
                spec,
                down,
                reply,
            } => {
                let result = self.core.with_tables(now, |t| t.create(&name, spec));
                let result = result.map(|store| {
                    let changes = self
                        .table_changes
                        .entry(name.clone())
                        .or_insert_with(|| broadcast::channel(CHANGES_CAPACITY).0)
                        .clone();
                    if let Some(hook) = down {
                        self.table_down_hooks.entry(name).or_default().push(hook);
                    }
                    Opened { store, changes }
                });
                let _ = reply.send(result);
            }
            TableCommand::Write { table, ops, reply } => {
                self.start_table_op(now, reply, |t, token| t.write(now, &table, token, ops));
            }
            TableCommand::Leader {
                table,
                op,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                self.start_table_op(now, reply, |t, token| {
                    t.leader(now, &table, token, op, deadline)
                });
            }
            TableCommand::Join {
                table,
                node,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                self.start_table_op(now, reply, |t, token| {
                    t.join(now, &table, &node, token, deadline)
                });
            }
            TableCommand::PingAll {
                table,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                self.start_table_op(now, reply, |t, token| {
                    t.ping_all(now, &table, token, deadline)
                });
            }
            TableCommand::Pause { table, id, reply } => {
                let _ = reply.send(self.core.with_tables(now, |t| t.pause(&table, id)));
            }
            TableCommand::Unpause { table, id } => {
                self.core.with_tables(now, |t| t.unpause(now, &table, id));
            }
            TableCommand::Info { table, reply } => {
                // Its size counts the writes made here, applied or not yet.
                self.core.with_tables(now, |t| t.settle(now));
                let _ = reply.send(self.core.tables.info(&table));
            }
            TableCommand::List { reply } => {
                let _ = reply.send(self.core.tables.names().map(str::to_owned).collect());
            }
        }
    }

    /// Starts an operation that completes later with `Done { token }`; one the core refuses
    /// at once answers its caller at once.
    fn start_table_op(
        &mut self,
        now: Instant,
        reply: Done,
        start: impl FnOnce(&mut Tables, u64) -> Result<(), TableError>,
    ) {
        self.next_token += 1;
        let token = self.next_token;
        self.table_waiters.insert(token, reply);
        if let Err(e) = self.core.with_tables(now, |t| start(t, token)) {
            if let Some(w) = self.table_waiters.remove(&token) {
                let _ = w.send(Err(e));
            }
        }
    }

    pub(super) fn on_table(&mut self, out: table::Output) {
        match out {
            table::Output::Done { token, result } => {
                if let Some(w) = self.table_waiters.remove(&token) {
                    let _ = w.send(result);
                }
            }
            table::Output::Changed { table, changes } => {
                if let Some(tx) = self.table_changes.get(&table) {
                    if tx.receiver_count() > 0 {
                        let _ = tx.send(Arc::new(changes));
                    }
                }
            }
            table::Output::Down { table, node } => {
                info!(table = %table, node = %node, "replica of table {table} on {node} went down");
                for hook in self.table_down_hooks.get(&table).into_iter().flatten() {
                    hook(&node);
                }
            }
            table::Output::Merged {
                table,
                node,
                result,
            } => match result {
                Ok(()) => {
                    info!(table = %table, node = %node, "table {table} re-merged with {node}")
                }
                Err(e) => {
                    warn!(table = %table, node = %node, "re-merge of table {table} with {node} failed, will retry: {e}")
                }
            },
            table::Output::Send { .. } => unreachable!("the stack turns sends into frames"),
        }
    }
}
