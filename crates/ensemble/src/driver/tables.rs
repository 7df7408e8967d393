//! The driver's side of replicated tables: commands from [`crate::Table`] handles into the
//! core, and the core's completions, changes and hooks back out.

use std::sync::Arc;
use std::time::Instant;

use ensemble_proto::stack::Input;
use ensemble_proto::table::{self, Reply, TableError};
use tokio::sync::{broadcast, oneshot};
use tracing::{info, warn};

use super::Driver;
use crate::command::{Done, DownHook, Opened, TableCommand, TableJoinEvent};

/// How many change batches a slow subscriber may lag behind before it misses some.
const CHANGES_CAPACITY: usize = 4096;

/// A caller waiting for the core's answer to a table command (`Done { token }`).
pub(super) enum TableWaiter {
    /// An operation that completes with the replicas' answers.
    Op(Done),
    /// A write to `table` made at `since`: its latency is recorded when it completes.
    Write {
        table: String,
        since: Instant,
        reply: Done,
    },
    /// A table being created or opened: the caller gets its records and change feed.
    Create {
        name: String,
        down: Option<DownHook>,
        reply: oneshot::Sender<Result<Opened, TableError>>,
    },
    /// A pause, answered at once.
    Pause(oneshot::Sender<Result<(), TableError>>),
}

impl Driver {
    pub(super) fn on_table_command(&mut self, now: Instant, c: TableCommand) {
        let token = self.next_token();
        let (input, waiter) = match c {
            TableCommand::Create {
                name,
                spec,
                down,
                reply,
            } => {
                let input = table::Input::Create {
                    token,
                    table: name.clone(),
                    spec,
                };
                (input, TableWaiter::Create { name, down, reply })
            }
            TableCommand::Write { table, ops, reply } => {
                crate::metrics::table_writes(&table, ops.len());
                let waiter = TableWaiter::Write {
                    table: table.clone(),
                    since: now,
                    reply,
                };
                (table::Input::Write { token, table, ops }, waiter)
            }
            TableCommand::Leader {
                table,
                op,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                let input = table::Input::Leader {
                    token,
                    table,
                    op,
                    deadline,
                };
                (input, TableWaiter::Op(reply))
            }
            TableCommand::Join {
                table,
                node,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                let input = table::Input::Join {
                    token,
                    table,
                    node,
                    deadline,
                };
                (input, TableWaiter::Op(reply))
            }
            TableCommand::PingAll {
                table,
                timeout,
                reply,
            } => {
                let deadline = crate::time::deadline(now, timeout);
                let input = table::Input::PingAll {
                    token,
                    table,
                    deadline,
                };
                (input, TableWaiter::Op(reply))
            }
            TableCommand::Pause { table, id, reply } => {
                let input = table::Input::Pause {
                    token,
                    table,
                    pause: id,
                };
                (input, TableWaiter::Pause(reply))
            }
            TableCommand::Unpause { table, id } => {
                let input = table::Input::Unpause { table, pause: id };
                return self.core.handle(now, Input::Table(input));
            }
            TableCommand::Info { table, reply } => {
                // Its size counts the writes made here, applied or not yet.
                self.core.handle(now, Input::Table(table::Input::Settle));
                let _ = reply.send(self.core.tables().info(&table));
                return;
            }
            TableCommand::List { reply } => {
                let names = self.core.tables().names().map(str::to_owned).collect();
                let _ = reply.send(names);
                return;
            }
        };
        // The answer comes out of the core as `Done { token }` (at once if refused here).
        self.table_waiters.insert(token, waiter);
        self.core.handle(now, Input::Table(input));
    }

    /// The core's answer to the table command with `token`.
    fn on_table_done(&mut self, token: u64, result: Result<Reply, TableError>) {
        match self.table_waiters.remove(&token) {
            Some(TableWaiter::Op(reply)) => {
                let _ = reply.send(result);
            }
            Some(TableWaiter::Write {
                table,
                since,
                reply,
            }) => {
                crate::metrics::table_written(&table, since.elapsed());
                let _ = reply.send(result);
            }
            Some(TableWaiter::Pause(reply)) => {
                let _ = reply.send(result.map(|_| ()));
            }
            Some(TableWaiter::Create { name, down, reply }) => {
                let opened = result.and_then(|_| {
                    let store = self.core.tables().store(&name);
                    store.ok_or_else(|| TableError::Unknown(name.clone()))
                });
                let opened = opened.map(|store| {
                    crate::metrics::table_opened(&name);
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
                let _ = reply.send(opened);
            }
            None => {}
        }
    }

    pub(super) fn on_table(&mut self, out: table::Output) {
        match out {
            table::Output::Done { token, result } => self.on_table_done(token, result),
            table::Output::Changed { table, changes } => {
                let label = [("table", table.clone())];
                metrics::counter!(crate::metrics::TABLE_CHANGES, &label)
                    .increment(changes.len() as u64);
                if let Some(tx) = self.table_changes.get(&table) {
                    if tx.receiver_count() > 0 {
                        let _ = tx.send(Arc::new(changes));
                    }
                }
            }
            table::Output::Down { table, node } => {
                metrics::counter!(crate::metrics::TABLE_REPLICAS_DOWN).increment(1);
                info!(table = %table, node = %node, "replica of table {table} on {node} went down");
                for hook in self.table_down_hooks.get(&table).into_iter().flatten() {
                    hook(&node);
                }
            }
            table::Output::Joined {
                table,
                node,
                took,
                conflicts,
            } => {
                crate::metrics::table_joined(&table, took, conflicts);
                info!(table = %table, node = %node, took_ms = took.as_millis() as u64, conflicts, "table {table} joined with {node}'s segment in {took:?}, {conflicts} conflicts resolved");
                let _ = self.published.table_joins.send(TableJoinEvent::Joined {
                    table,
                    node,
                    took,
                    conflicts,
                });
            }
            table::Output::Merged {
                table,
                node,
                result,
            } => {
                match &result {
                    Ok(()) => {
                        metrics::counter!(crate::metrics::TABLE_REMERGES, "result" => "ok")
                            .increment(1);
                        info!(table = %table, node = %node, "table {table} re-merged with {node}")
                    }
                    Err(e) => {
                        metrics::counter!(crate::metrics::TABLE_REMERGES, "result" => "failed")
                            .increment(1);
                        warn!(table = %table, node = %node, "re-merge of table {table} with {node} failed, will retry: {e}")
                    }
                }
                let event = TableJoinEvent::Remerged {
                    table,
                    node,
                    result,
                };
                let _ = self.published.table_joins.send(event);
            }
            // The stack hands sends out as frames (`Output::Send`).
            table::Output::Send { .. } => {}
        }
    }
}
