//! Queries (Serf's `query`): a request that fans out to every member by broadcast, and acks
//! and responses that come straight back to the origin (by named messaging, relayed in a
//! client-server topology) until a timeout.
//!
//! Each member checks the request's filter (member names, tag patterns) against itself,
//! delivers each request once (by origin and id; the ids are forgotten a timeout after the
//! deadline), acks it if asked, and hands it to its local handler ([`Output::Request`]), whose
//! answer ([`Input::Respond`]) goes back to the origin. The origin reports acks and responses
//! as [`QueryEvent`]s, one of each per member, and [`QueryEvent::Done`] at the deadline.
//! Everything is bounded: name, payload, response, filters, timeout, queries in flight and
//! the rate of queries per origin.

mod fanout;
mod filter;
mod io;
mod msg;
mod rate;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use fanout::MAX_REMEMBERED;
pub use filter::selects;
pub use io::{
    default_timeout, Incoming, Input, Output, QueryConfig, QueryError, QueryEvent, QueryId, Reply,
};
pub use msg::{QueryFilter, QueryMsg, QueryRequest};

use crate::broadcast::Handler;
use crate::member::Tags;
use fanout::{Fanout, SharedState};
use rate::Rates;

/// The broadcast handler and the named-messaging name queries travel under.
pub const QUERY_HANDLER: &str = "ensemble.query";
/// Longest query name, in bytes.
pub const MAX_NAME: usize = 128;
/// Largest query payload, in bytes.
pub const MAX_PAYLOAD: usize = 8 * 1024;
/// Largest response, in bytes.
pub const MAX_RESPONSE: usize = 8 * 1024;
/// Most member names in a filter.
pub const MAX_FILTER_NODES: usize = 64;
/// Most tag patterns in a filter.
pub const MAX_FILTER_TAGS: usize = 16;
/// Longest tag pattern, in bytes.
pub const MAX_TAG_PATTERN: usize = 256;
/// Longest timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Acks (and responses) counted per query: more members than this are not reported.
const MAX_ANSWERS: usize = 16_384;

/// A query received here whose deadline has not passed.
struct Received {
    deadline: Instant,
    answered: bool,
}

struct Running {
    deadline: Instant,
    acks: BTreeSet<String>,
    responses: BTreeSet<String>,
}

/// What a timer does when it fires.
enum Expiry {
    /// The deadline of a query received here: a response is no longer taken.
    Received(QueryId),
    /// The request's id is forgotten (a timeout after its deadline).
    Seen(Bytes),
}

/// Counters of requests not handed to a handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Requests this member's filter did not select.
    pub not_selected: u64,
    /// Requests dropped over their origin's rate limit.
    pub rate_limited: u64,
    /// Requests dropped because [`MAX_REMEMBERED`] were held.
    pub dropped_full: u64,
    /// Acks and responses for no running query (late, or unknown).
    pub late_answers: u64,
}

/// The queries of one node.
pub struct Queries {
    local: String,
    config: QueryConfig,
    shared: SharedState,
    next_id: u64,
    running: BTreeMap<u64, Running>,
    /// Queries received here whose deadline has not passed.
    received: BTreeMap<QueryId, Received>,
    timers: BTreeMap<(Instant, u64), Expiry>,
    timer_seq: u64,
    rates: Rates,
    stats: QueryStats,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("running", &self.running.len())
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

impl Queries {
    /// The queries of member `local`; `seed` starts its query ids (give a different one at
    /// every start, so receivers do not take a restarted node's queries for ones they saw).
    pub fn new(local: String, config: QueryConfig, seed: u64) -> Self {
        Queries {
            local,
            config,
            shared: SharedState::default(),
            next_id: seed,
            running: BTreeMap::new(),
            received: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            rates: Rates::new(config.rate_per_sec, config.burst),
            stats: QueryStats::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The broadcast handler requests fan out through; register it under [`QUERY_HANDLER`].
    pub fn handler(&self) -> Box<dyn Handler> {
        Box::new(Fanout(self.shared.clone()))
    }

    /// The settings.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Queries of this node still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Counters of requests not handed to a handler.
    pub fn stats(&self) -> QueryStats {
        QueryStats {
            dropped_full: self.shared.lock().dropped_full,
            ..self.stats
        }
    }

    /// Feeds one input; see [`Input`].
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Query {
                token,
                name,
                payload,
                filter,
                timeout,
                want_ack,
            } => {
                let timeout = timeout.unwrap_or_else(|| default_timeout(&self.config, 1));
                let result = self.start(now, name, payload, filter, timeout, want_ack);
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Respond {
                token,
                query,
                payload,
            } => {
                let result = self.respond(query, payload);
                self.outputs.push_back(Output::Done { token, result });
            }
            Input::Delivered { tags } => self.delivered(now, &tags),
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::Tick => self.tick(now),
        }
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is next wanted (None: nothing running or remembered).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.keys().next().map(|(t, _)| *t);
        let deadline = self.running.values().map(|r| r.deadline).min();
        timer.into_iter().chain(deadline).min()
    }

    fn start(
        &mut self,
        now: Instant,
        name: String,
        payload: Bytes,
        filter: QueryFilter,
        timeout: Duration,
        want_ack: bool,
    ) -> Result<Reply, QueryError> {
        check_request(&name, &payload, &filter, timeout)?;
        if self.running.len() >= self.config.max_in_flight {
            let max = self.config.max_in_flight;
            return Err(QueryError::TooMany { max });
        }
        if !self.rates.take(now, &self.local) {
            let per_sec = self.config.rate_per_sec;
            return Err(QueryError::RateLimited { per_sec });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let request = QueryRequest {
            id,
            origin: self.local.clone(),
            name,
            payload,
            filter,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            want_ack,
        };
        let running = Running {
            deadline: now + timeout,
            acks: BTreeSet::new(),
            responses: BTreeSet::new(),
        };
        self.running.insert(id, running);
        self.outputs.push_back(Output::Broadcast(request.encode()));
        Ok(Reply::Started(id))
    }

    fn respond(&mut self, query: QueryId, payload: Bytes) -> Result<Reply, QueryError> {
        if payload.len() > MAX_RESPONSE {
            let (len, max) = (payload.len(), MAX_RESPONSE);
            return Err(QueryError::ResponseTooLarge { len, max });
        }
        let deadline = match self.received.get_mut(&query) {
            None => return Err(QueryError::UnknownQuery),
            Some(r) if r.answered => return Err(QueryError::AlreadyResponded),
            Some(r) => {
                r.answered = true;
                r.deadline
            }
        };
        let msg = QueryMsg::Response {
            id: query.id,
            payload,
        };
        self.reply(query.origin, msg, deadline);
        Ok(Reply::Responded)
    }

    /// Sends `msg` to the query's origin until `deadline` (this node's own queries are
    /// answered in place).
    fn reply(&mut self, origin: String, msg: QueryMsg, deadline: Instant) {
        if origin == self.local {
            let from = self.local.clone();
            self.on_message(from, msg);
        } else {
            self.outputs.push_back(Output::Send {
                to: origin,
                msg,
                deadline,
            });
        }
    }

    fn delivered(&mut self, now: Instant, tags: &Tags) {
        let requests: Vec<QueryRequest> = self.shared.lock().inbox.drain(..).collect();
        for r in requests {
            let timeout = Duration::from_millis(r.timeout_ms.into()).min(MAX_TIMEOUT);
            let deadline = now + timeout;
            self.timer(deadline + timeout, Expiry::Seen(r.key()));
            if r.origin != self.local && !self.rates.take(now, &r.origin) {
                self.stats.rate_limited += 1;
                continue;
            }
            let valid = check_request(&r.name, &r.payload, &r.filter, timeout).is_ok();
            if !valid || !selects(&r.filter, &self.local, tags) {
                self.stats.not_selected += 1;
                continue;
            }
            let query = QueryId {
                origin: r.origin.clone(),
                id: r.id,
            };
            let received = Received {
                deadline,
                answered: false,
            };
            self.received.insert(query.clone(), received);
            self.timer(deadline, Expiry::Received(query.clone()));
            if r.want_ack {
                self.reply(r.origin, QueryMsg::Ack { id: r.id }, deadline);
            }
            self.outputs.push_back(Output::Request(Incoming {
                query,
                name: r.name,
                payload: r.payload,
                deadline,
            }));
        }
    }

    fn timer(&mut self, at: Instant, what: Expiry) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), what);
    }

    fn on_message(&mut self, from: String, msg: QueryMsg) {
        let id = match &msg {
            QueryMsg::Ack { id } | QueryMsg::Response { id, .. } => *id,
        };
        let Some(r) = self.running.get_mut(&id) else {
            self.stats.late_answers += 1;
            return;
        };
        let event = match msg {
            QueryMsg::Ack { .. } if r.acks.len() < MAX_ANSWERS && r.acks.insert(from.clone()) => {
                QueryEvent::Ack { from }
            }
            QueryMsg::Response { payload, .. }
                if payload.len() <= MAX_RESPONSE
                    && r.responses.len() < MAX_ANSWERS
                    && r.responses.insert(from.clone()) =>
            {
                QueryEvent::Response { from, payload }
            }
            _ => return,
        };
        self.outputs.push_back(Output::Event { query: id, event });
    }

    fn tick(&mut self, now: Instant) {
        let done: Vec<u64> = (self.running.iter())
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let r = self.running.remove(&id).expect("listed");
            let event = QueryEvent::Done {
                acks: r.acks.len(),
                responses: r.responses.len(),
            };
            self.outputs.push_back(Output::Event { query: id, event });
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Expiry::Received(q) => {
                    self.received.remove(&q);
                }
                Expiry::Seen(key) => {
                    self.shared.lock().seen.remove(&key);
                }
            }
        }
        self.rates.sweep(now);
    }
}

/// Checks a query name: 1 to [`MAX_NAME`] bytes, no control characters.
pub fn check_name(name: &str) -> Result<(), QueryError> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(QueryError::BadName { max: MAX_NAME });
    }
    Ok(())
}

/// Checks a request against the limits (at the origin, and again at each receiver).
pub fn check_request(
    name: &str,
    payload: &[u8],
    filter: &QueryFilter,
    timeout: Duration,
) -> Result<(), QueryError> {
    check_name(name)?;
    if payload.len() > MAX_PAYLOAD {
        let (len, max) = (payload.len(), MAX_PAYLOAD);
        return Err(QueryError::PayloadTooLarge { len, max });
    }
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(QueryError::BadTimeout { max: MAX_TIMEOUT });
    }
    if filter.nodes.len() > MAX_FILTER_NODES {
        let n = filter.nodes.len();
        let msg = format!("{n} node names, at most {MAX_FILTER_NODES}");
        return Err(QueryError::BadFilter(msg));
    }
    if filter.tags.len() > MAX_FILTER_TAGS {
        let n = filter.tags.len();
        let msg = format!("{n} tag patterns, at most {MAX_FILTER_TAGS}");
        return Err(QueryError::BadFilter(msg));
    }
    for (key, pattern) in &filter.tags {
        if filter::compile(pattern).is_none() {
            let msg = format!(
                "tag {key:?}: pattern {pattern:?} does not compile or is over {MAX_TAG_PATTERN} bytes"
            );
            return Err(QueryError::BadFilter(msg));
        }
    }
    Ok(())
}
