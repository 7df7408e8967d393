//! User events (Serf style): a broadcast handler that delivers each event once per node, in
//! order per origin, and keeps a bounded log of recent events for grafts and anti-entropy.
//!
//! Each node's events form a stream (its name and a per-start stream number) numbered 1, 2, 3...
//! A receiver delivers a stream strictly in order, holding back events that overtake a gap
//! until the gap fills. Events also carry a Lamport time: a node with no history takes the
//! cluster's time from its first exchange and ignores older events, so a newcomer or a restarted
//! node does not replay the past (Serf's default on join).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Graft, Handler};

/// The name under which the runtime registers the user-event handler.
pub const USER_EVENTS: &str = "ensemble.events";

/// Held-back events per stream beyond which a gap is given up (and skipped).
const MAX_PENDING: usize = 1024;

/// A user event as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    /// The node that sent it.
    pub origin: String,
    /// The origin's stream (one per process start).
    pub stream: u64,
    /// Position in the stream, from 1.
    pub seq: u64,
    /// Lamport time.
    pub ltime: u64,
    /// Event name.
    pub name: String,
    /// Event payload.
    pub payload: Bytes,
}

/// What the application broadcasts: a name and a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInput {
    /// Event name.
    pub name: String,
    /// Event payload.
    pub payload: Bytes,
}

impl EventInput {
    /// The bytes to hand to [`crate::broadcast::Plumtree::broadcast`].
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("serializes"))
    }
}

#[derive(Serialize, Deserialize)]
struct Id {
    origin: String,
    stream: u64,
    seq: u64,
    ltime: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Summary {
    /// The sender has just started and holds nothing: it wants no history.
    fresh: bool,
    ltime: u64,
    /// Per stream: origin, stream, the last event delivered in order, and the first event
    /// not known to be gone: what lies before it left this node's log (evicted), or was given
    /// up on a peer's word that it had left that peer's. A position adopted on arrival or a
    /// gap skipped for other reasons moves it not: that is no evidence that no log holds them.
    streams: Vec<(String, u64, u64, u64)>,
}

#[derive(Default)]
struct Stream {
    delivered: u64,
    pending: BTreeMap<u64, UserEvent>,
    /// The last event known to be gone from the logs: evicted from this node's, or given up
    /// on a peer's word that it left that peer's (0: none).
    gone: u64,
}

/// The user-event handler.
pub struct EventLog {
    origin: String,
    stream: u64,
    next_seq: u64,
    ltime: u64,
    /// Events older than this are ignored (set from the first exchange of a node with no
    /// history).
    min_ltime: Option<u64>,
    /// Set by the first exchange: from then on this node is a member with a history (even an
    /// empty one), and what it misses is repaired, not skipped.
    joined: bool,
    streams: BTreeMap<(String, u64), Stream>,
    /// Recent events, encoded, by (origin, stream, seq); oldest evicted first.
    log: BTreeMap<(String, u64, u64), Bytes>,
    order: VecDeque<(String, u64, u64)>,
    retain: usize,
    skipped: u64,
    sink: Box<dyn FnMut(UserEvent) + Send>,
}

impl EventLog {
    /// The handler of node `origin`, whose events form stream `stream` (use a number that
    /// differs at every start), keeping the last `retain` events, and calling `sink` for
    /// each event delivered.
    pub fn new(
        origin: String,
        stream: u64,
        retain: usize,
        sink: impl FnMut(UserEvent) + Send + 'static,
    ) -> Self {
        EventLog {
            origin,
            stream,
            next_seq: 1,
            ltime: 0,
            min_ltime: None,
            joined: false,
            streams: BTreeMap::new(),
            log: BTreeMap::new(),
            order: VecDeque::new(),
            retain: retain.max(1),
            skipped: 0,
            sink: Box::new(sink),
        }
    }

    /// True before this node's first exchange (whatever it sent or received meanwhile).
    fn is_fresh(&self) -> bool {
        !self.joined
    }

    /// A newcomer starts where the cluster is: streams the peer knows continue from the peer's
    /// positions (events held here that are older are dropped, newer ones flow), and events of
    /// streams it does not know that are older than the peer's clock are not replayed.
    fn adopt(&mut self, theirs: &Summary) {
        self.min_ltime = Some(theirs.ltime.saturating_add(1));
        self.ltime = self.ltime.max(theirs.ltime);
        for (o, st, d, _) in &theirs.streams {
            let key = (o.clone(), *st);
            let s = self.streams.entry(key.clone()).or_default();
            s.delivered = s.delivered.max(*d);
            s.pending.retain(|seq, _| *seq > *d);
            self.flush(&key);
        }
    }

    /// Gaps the peer can no longer fill (its log starts past them, and it has delivered up to
    /// there) are given up at once, so what waits behind them flows.
    fn skip_lost_gaps(&mut self, theirs: &Summary) {
        for (o, st, d, first) in &theirs.streams {
            let key = (o.clone(), *st);
            let Some(s) = self.streams.get_mut(&key) else {
                continue;
            };
            let gap_lost = *first > s.delivered.saturating_add(1) && *d >= first - 1;
            if gap_lost && !s.pending.is_empty() {
                self.skipped += first - 1 - s.delivered;
                s.delivered = first - 1;
                // Gone from the peer's log: peers may give it up on this node's word too.
                s.gone = s.gone.max(first - 1);
                s.pending.retain(|seq, _| *seq > first - 1);
                self.flush(&key);
            }
        }
    }

    /// Events given up because a gap before them never filled.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn id_of(e: &UserEvent) -> Bytes {
        let id = Id {
            origin: e.origin.clone(),
            stream: e.stream,
            seq: e.seq,
            ltime: e.ltime,
        };
        Bytes::from(postcard::to_stdvec(&id).expect("serializes"))
    }

    /// Known here, or too old to take: a stream this node follows is judged by position; an
    /// event of a stream it never saw is too old if it predates this node's arrival.
    fn known(&self, origin: &str, stream: u64, seq: u64, ltime: u64) -> bool {
        match self.streams.get(&(origin.to_owned(), stream)) {
            Some(s) => seq <= s.delivered || s.pending.contains_key(&seq),
            None => self.min_ltime.is_some_and(|m| ltime < m),
        }
    }

    fn keep(&mut self, e: &UserEvent, payload: Bytes) {
        let key = (e.origin.clone(), e.stream, e.seq);
        self.log.insert(key.clone(), payload);
        self.order.push_back(key);
        while self.order.len() > self.retain {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if self.log.remove(&old).is_some() {
                let (o, st, seq) = old;
                if let Some(s) = self.streams.get_mut(&(o, st)) {
                    s.gone = s.gone.max(seq);
                }
            }
        }
    }

    /// Delivers what is in order in the stream of `key`.
    fn flush(&mut self, key: &(String, u64)) {
        let Some(s) = self.streams.get_mut(key) else {
            return;
        };
        loop {
            let next = s.delivered.saturating_add(1);
            if let Some(e) = s.pending.remove(&next) {
                s.delivered = next;
                (self.sink)(e);
            } else if s.pending.len() > MAX_PENDING {
                // The gap is gone from every log: give it up.
                let (&first, _) = s.pending.iter().next().expect("not empty");
                self.skipped += first - next;
                s.delivered = first - 1;
            } else {
                break;
            }
        }
    }
}

impl Handler for EventLog {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        let input: EventInput = postcard::from_bytes(&msg).unwrap_or(EventInput {
            name: String::new(),
            payload: msg,
        });
        // A peer's event may carry any time, the last one too: the clock stays there.
        self.ltime = self.ltime.saturating_add(1);
        let e = UserEvent {
            origin: self.origin.clone(),
            stream: self.stream,
            seq: self.next_seq,
            ltime: self.ltime,
            name: input.name,
            payload: input.payload,
        };
        self.next_seq += 1;
        let payload = Bytes::from(postcard::to_stdvec(&e).expect("serializes"));
        (Self::id_of(&e), payload)
    }

    fn merge(&mut self, _id: &Bytes, payload: &Bytes) -> bool {
        let Ok(e) = postcard::from_bytes::<UserEvent>(payload) else {
            return false;
        };
        if e.seq == 0 {
            // Streams number their events from 1: a 0 could never be delivered in order, and
            // would hold the position of its stream below every gap (see `flush`).
            return false;
        }
        let key = (e.origin.clone(), e.stream);
        if self.known(&e.origin, e.stream, e.seq, e.ltime) {
            if !self.streams.contains_key(&key) {
                // From before this node arrived: the stream continues after it, no gap.
                self.streams.entry(key).or_default().delivered = e.seq;
            }
            return false;
        }
        self.ltime = self.ltime.max(e.ltime);
        self.keep(&e, payload.clone());
        let s = self.streams.entry(key.clone()).or_default();
        s.pending.insert(e.seq, e);
        self.flush(&key);
        true
    }

    fn is_stale(&self, id: &Bytes) -> bool {
        match postcard::from_bytes::<Id>(id) {
            Ok(i) => self.known(&i.origin, i.stream, i.seq, i.ltime),
            // Nothing could ever match it.
            Err(_) => true,
        }
    }

    fn graft(&self, id: &Bytes) -> Graft {
        let Ok(i) = postcard::from_bytes::<Id>(id) else {
            return Graft::Stale;
        };
        match self.log.get(&(i.origin, i.stream, i.seq)) {
            Some(p) => Graft::Payload(p.clone()),
            None => Graft::Lost,
        }
    }

    fn summary(&self) -> Option<Bytes> {
        let s = Summary {
            fresh: self.is_fresh(),
            ltime: self.ltime,
            streams: self
                .streams
                .iter()
                .map(|((o, st), s)| {
                    // Only what is known to be gone: a log that never held the events (a
                    // position adopted on arrival) says nothing of the other logs.
                    let gone = s.gone.saturating_add(1);
                    let first = self
                        .log
                        .range((o.clone(), *st, 0)..=(o.clone(), *st, u64::MAX))
                        .next()
                        .map_or(gone, |((_, _, q), _)| (*q).min(gone));
                    (o.clone(), *st, s.delivered, first)
                })
                .collect(),
        };
        Some(Bytes::from(postcard::to_stdvec(&s).expect("serializes")))
    }

    fn missing(&mut self, summary: &[u8], limit: usize) -> Vec<(Bytes, Bytes)> {
        let Ok(theirs) = postcard::from_bytes::<Summary>(summary) else {
            return Vec::new();
        };
        if self.is_fresh() {
            self.adopt(&theirs);
        }
        self.joined = true;
        self.skip_lost_gaps(&theirs);
        if theirs.fresh {
            // A newcomer: it will not take the past.
            return Vec::new();
        }
        let has: BTreeMap<(&str, u64), u64> = theirs
            .streams
            .iter()
            .map(|(o, st, d, _)| ((o.as_str(), *st), *d))
            .collect();
        self.log
            .iter()
            .filter(|((o, st, seq), _)| has.get(&(o.as_str(), *st)).is_none_or(|d| seq > d))
            .take(limit)
            .map(|((o, st, seq), p)| {
                let ltime = postcard::from_bytes::<UserEvent>(p).map_or(0, |e| e.ltime);
                let id = Id {
                    origin: o.clone(),
                    stream: *st,
                    seq: *seq,
                    ltime,
                };
                (
                    Bytes::from(postcard::to_stdvec(&id).expect("serializes")),
                    p.clone(),
                )
            })
            .collect()
    }
}
