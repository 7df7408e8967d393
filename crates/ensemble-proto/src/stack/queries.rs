//! The glue of queries: requests fan out through the broadcast handler
//! [`query::QUERY_HANDLER`], acks and responses travel as acknowledged named messages under
//! the same name (relayed like any named message in a client-server topology). They are
//! acknowledged because a member often gets a request before it is connected to the origin
//! (a full mesh dials a new member at its next tick; the request came through another
//! member): named messaging holds them until the connection opens or the query's deadline.

use std::time::Instant;

use super::{Output, Stack};
use crate::broadcast;
use crate::messaging;
use crate::query::{self, QueryMsg, QUERY_HANDLER};

/// The token of the stack's own broadcast and messaging commands (the query handler's
/// registration, each query's fan-out, acks and responses); their answers are not passed
/// on. The runtime's tokens count up from 1 and never reach it.
const STACK_TOKEN: u64 = u64::MAX;

impl Stack {
    /// Registers the query handler with broadcast and its name with named messaging.
    pub(super) fn register_queries(&mut self, now: Instant) {
        let input = broadcast::Input::Register {
            token: STACK_TOKEN,
            name: QUERY_HANDLER.to_owned(),
            handler: self.queries.handler(),
        };
        self.broadcast.handle(now, input);
        let input = messaging::Input::Register(QUERY_HANDLER.to_owned());
        self.messaging.handle(now, input);
    }

    /// A query command; one without a timeout gets Serf's default for the live members.
    pub(super) fn query_input(&mut self, now: Instant, mut input: query::Input) {
        if let query::Input::Query { timeout, .. } = &mut input {
            if timeout.is_none() {
                let members = self.membership.members().filter(|m| m.status.is_up());
                let default = query::default_timeout(self.queries.config(), members.count());
                *timeout = Some(default);
            }
        }
        self.queries.handle(now, input);
    }

    /// A broadcast output, unless it belongs to queries (then it is handled here).
    pub(super) fn query_broadcast(
        &mut self,
        now: Instant,
        out: broadcast::Output,
    ) -> Option<broadcast::Output> {
        match out {
            broadcast::Output::Done {
                token: STACK_TOKEN, ..
            } => None,
            broadcast::Output::Delivered(d) if d.handler == QUERY_HANDLER => {
                let tags = self.membership.local().tags.clone();
                self.queries.handle(now, query::Input::Delivered { tags });
                None
            }
            other => Some(other),
        }
    }

    /// A named-messaging output, unless it belongs to queries (then it is handled here).
    pub(super) fn query_message(
        &mut self,
        now: Instant,
        out: messaging::Output,
    ) -> Option<messaging::Output> {
        match out {
            messaging::Output::Deliver {
                from,
                name,
                payload,
            } if name == QUERY_HANDLER => {
                if let Some(msg) = QueryMsg::decode(&payload) {
                    self.queries
                        .handle(now, query::Input::Message { from, msg });
                }
                None
            }
            // An ack or response arrived, or was given up at the query's deadline (or the
            // origin runs no queries): nothing to tell anyone.
            messaging::Output::Acked(STACK_TOKEN) | messaging::Output::Failed(STACK_TOKEN, _) => {
                None
            }
            messaging::Output::CastRejected { name, .. } if name == QUERY_HANDLER => None,
            other => Some(other),
        }
    }

    /// Carries out the queries' outputs; true if there were any.
    pub(super) fn drain_queries(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(o) = self.queries.poll_output() {
            any = true;
            match o {
                query::Output::Broadcast(msg) => {
                    let input = broadcast::Input::Broadcast {
                        token: STACK_TOKEN,
                        handler: QUERY_HANDLER.to_owned(),
                        msg,
                    };
                    self.broadcast.handle(now, input);
                }
                query::Output::Send { to, msg, deadline } => {
                    let input = messaging::Input::Send {
                        to,
                        name: QUERY_HANDLER.to_owned(),
                        payload: msg.encode(),
                        ack: Some((STACK_TOKEN, deadline)),
                        channel: None,
                    };
                    self.messaging.handle(now, input);
                }
                other => self.outputs.push_back(Output::Query(other)),
            }
        }
        any
    }
}
