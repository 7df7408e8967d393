//! Calls this node waits on: leader operations (`insert_new` and the like, sent to the table's
//! leader and retried with back-off across leader changes) and pings of every replica.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::msg::{LeaderOp, LeaderResult, TableMsg};
use super::replica::check_limits;
use super::tables::Tables;
use super::{Output, Reply, TableError, WriteOp};

/// A leader request or a ping this node waits on.
#[derive(Debug)]
pub(crate) enum Call {
    Leader {
        table: String,
        op: LeaderOp,
        token: u64,
        deadline: Instant,
        attempts: u32,
        /// When to ask (again).
        retry_at: Instant,
    },
    Ping {
        token: u64,
        deadline: Instant,
        waiting: BTreeSet<String>,
        table: String,
        /// Writes numbered below this were made before the ping.
        before: u64,
    },
}

impl Tables {
    /// Sends a leader operation to the table's leader ([`super::Input::Leader`]).
    pub(super) fn leader(
        &mut self,
        now: Instant,
        table: &str,
        token: u64,
        op: LeaderOp,
        deadline: Instant,
    ) -> Result<(), TableError> {
        let r = self.replica(table)?;
        if let LeaderOp::InsertNew { key, value } | LeaderOp::InsertNewOrLookup { key, value } = &op
        {
            check_limits(
                table,
                &r.spec,
                &self.config,
                &r.read(),
                &[WriteOp::Insert(key.clone(), value.clone())],
            )?;
        }
        let id = self.next_call();
        self.calls.insert(
            id,
            Call::Leader {
                table: table.to_string(),
                op,
                token,
                deadline,
                attempts: 0,
                retry_at: now,
            },
        );
        self.retry_call(now, id);
        Ok(())
    }

    /// Pings every replica of the table ([`super::Input::PingAll`]).
    pub(super) fn ping_all(
        &mut self,
        table: &str,
        token: u64,
        deadline: Instant,
    ) -> Result<(), TableError> {
        let r = self.replica(table)?;
        let waiting = r.peers.clone();
        if waiting.is_empty() {
            self.push_output(Output::Done {
                token,
                result: Ok(Reply::Pinged),
            });
            return Ok(());
        }
        let before = r.next_write();
        let id = self.next_call();
        for p in &waiting {
            self.push_send(
                p.clone(),
                TableMsg::Ping {
                    table: table.to_string(),
                    id,
                },
            );
        }
        self.calls.insert(
            id,
            Call::Ping {
                token,
                deadline,
                waiting,
                table: table.to_string(),
                before,
            },
        );
        Ok(())
    }

    /// `node` went down: pings stop waiting for it, leader calls ask the new leader soon.
    pub(super) fn calls_without(&mut self, now: Instant, node: &str) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let retry = self.config.leader_retry / 4;
            match self.calls.get_mut(&id) {
                Some(Call::Ping { waiting, .. }) => {
                    waiting.remove(node);
                }
                Some(Call::Leader {
                    table, retry_at, ..
                }) => {
                    let leader = self
                        .replicas
                        .get(table.as_str())
                        .map(|r| r.leader(&self.me));
                    if leader.is_some() {
                        *retry_at = (*retry_at).min(now + retry);
                    }
                }
                None => {}
            }
        }
    }

    /// Leader calls due again or past their deadline; pings past theirs.
    pub(super) fn tick_calls(&mut self, now: Instant) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            match self.calls.get(&id) {
                Some(Call::Leader {
                    deadline, retry_at, ..
                }) if now >= *retry_at || now >= *deadline => self.retry_call(now, id),
                Some(Call::Ping {
                    deadline,
                    token,
                    waiting,
                    table,
                    before,
                }) if now >= *deadline => {
                    let mut late = waiting.clone();
                    if let Some(r) = self.replicas.get(table) {
                        late.extend(r.lagging(*before));
                    }
                    let result = Err(TableError::Timeout(late.into_iter().collect()));
                    let token = *token;
                    self.push_output(Output::Done { token, result });
                    self.calls.remove(&id);
                }
                _ => {}
            }
        }
    }

    /// A replica answered a ping.
    pub(super) fn on_pong(&mut self, from: &str, id: u64) {
        if let Some(Call::Ping { waiting, .. }) = self.calls.get_mut(&id) {
            waiting.remove(from);
        }
        self.complete_pings();
    }

    pub(super) fn complete_pings(&mut self) {
        // Done when every replica answered and every write made here before the ping was
        // acked (or its replica went down): a write beyond the window, or one lost and sent
        // again, may arrive after the answer.
        let replicas = &self.replicas;
        let done: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| match c {
                Call::Ping {
                    waiting,
                    table,
                    before,
                    ..
                } => {
                    waiting.is_empty()
                        && !replicas
                            .get(table)
                            .is_some_and(|r| r.writes_pending_before(*before))
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(Call::Ping { token, .. }) = self.calls.remove(&id) {
                self.push_output(Output::Done {
                    token,
                    result: Ok(Reply::Pinged),
                });
            }
        }
    }

    /// Sends (again) a leader call to the current leader, or fails it past its deadline.
    fn retry_call(&mut self, now: Instant, id: u64) {
        let retry = self.config.leader_retry;
        let Some(Call::Leader {
            table,
            op,
            token,
            deadline,
            attempts,
            retry_at,
        }) = self.calls.get_mut(&id)
        else {
            return;
        };
        let leader = self
            .replicas
            .get(table.as_str())
            .map(|r| r.leader(&self.me).to_string());
        let (Some(leader), true) = (leader, now < *deadline) else {
            let result = Err(TableError::LeaderUnavailable {
                table: table.clone(),
                attempts: *attempts,
            });
            let token = *token;
            self.calls.remove(&id);
            self.push_output(Output::Done { token, result });
            return;
        };
        *attempts += 1;
        *retry_at = now + retry;
        let msg = TableMsg::LeaderRequest {
            table: table.clone(),
            id,
            op: op.clone(),
        };
        // To this node itself when it leads: handled before the input returns.
        self.push_send(leader, msg);
    }

    pub(super) fn on_leader_reply(&mut self, now: Instant, id: u64, result: LeaderResult) {
        let Some(Call::Leader {
            token,
            attempts,
            retry_at,
            ..
        }) = self.calls.get_mut(&id)
        else {
            return;
        };
        if result == LeaderResult::NotLeader {
            // The leader is changing: ask again after a back-off.
            let backoff = Duration::from_millis(20 << (*attempts).min(6));
            *retry_at = now + backoff;
            return;
        }
        let token = *token;
        self.calls.remove(&id);
        self.push_output(Output::Done {
            token,
            result: Ok(Reply::Leader(result)),
        });
    }
}
