//! The driver's side of queries: [`crate::Node::query`] starts one in the core and gets its
//! events on its own channel; queries for this node go to the handler registered for their
//! name ([`crate::Node::register_query_handler`]), whose answers come back as commands.

use std::time::Instant;

use ensemble_proto::query::{self, Output, QueryError, QueryEvent, Reply};
use ensemble_proto::stack::Input;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::Driver;
use crate::command::QueryCommand;

/// A query started here waiting for the core's answer (`Done { token }`).
pub(super) struct QueryWaiter {
    events: mpsc::UnboundedSender<QueryEvent>,
    reply: oneshot::Sender<Result<(), QueryError>>,
}

/// The driver's query state: callers waiting to start, running queries' event channels,
/// the handlers by name.
#[derive(Default)]
pub(super) struct QueryRoutes {
    waiters: std::collections::HashMap<u64, QueryWaiter>,
    running: std::collections::HashMap<u64, mpsc::UnboundedSender<QueryEvent>>,
    handlers: std::collections::HashMap<String, mpsc::Sender<query::Incoming>>,
}

impl Driver {
    pub(super) fn on_query_command(&mut self, now: Instant, c: QueryCommand) {
        match c {
            QueryCommand::Start {
                name,
                payload,
                filter,
                timeout,
                want_ack,
                events,
                reply,
            } => {
                let token = self.next_token();
                let waiter = QueryWaiter { events, reply };
                self.queries.waiters.insert(token, waiter);
                let input = query::Input::Query {
                    token,
                    name,
                    payload,
                    filter,
                    timeout,
                    want_ack,
                };
                self.core.handle(now, Input::Query(input));
            }
            QueryCommand::RegisterHandler {
                name,
                handler,
                reply,
            } => {
                let routes = &mut self.queries.handlers;
                // A handler whose task ended (its node handle dropped) gives its name back.
                let taken = routes.get(&name).is_some_and(|h| !h.is_closed());
                if !taken {
                    routes.insert(name, handler);
                }
                let _ = reply.send(!taken);
            }
            QueryCommand::Respond { query, payload } => {
                let token = self.next_token();
                let input = query::Input::Respond {
                    token,
                    query,
                    payload,
                };
                self.core.handle(now, Input::Query(input));
            }
        }
    }

    pub(super) fn on_query_output(&mut self, out: Output) {
        let routes = &mut self.queries;
        match out {
            Output::Request(incoming) => match routes.handlers.get(&incoming.name) {
                // A handler falling behind drops queries rather than holding the driver.
                Some(h) => {
                    if h.try_send(incoming).is_err() {
                        debug!("a query handler is busy or gone: query dropped");
                    }
                }
                None => debug!(name = %incoming.name, "no handler for this query here"),
            },
            Output::Event { query, event } => {
                let done = matches!(event, QueryEvent::Done { .. });
                if let Some(tx) = routes.running.get(&query) {
                    let _ = tx.send(event);
                }
                if done {
                    routes.running.remove(&query);
                }
            }
            Output::Done { token, result } => {
                let Some(w) = routes.waiters.remove(&token) else {
                    // A response's answer: a refusal (too late, too large) is only logged.
                    if let Err(e) = result {
                        debug!("query response refused: {e}");
                    }
                    return;
                };
                match result {
                    Ok(Reply::Started(id)) => {
                        routes.running.insert(id, w.events);
                        let _ = w.reply.send(Ok(()));
                    }
                    Ok(Reply::Responded) => {}
                    Err(e) => {
                        let _ = w.reply.send(Err(e));
                    }
                }
            }
            // The stack carries out broadcasts and sends itself.
            Output::Broadcast(_) | Output::Send { .. } => {}
        }
    }
}
