//! The broadcast handler queries fan out through: it delivers each request once (by origin
//! and id) into an inbox the query machine empties, and keeps the requests it holds for
//! grafts until the machine forgets them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::msg::QueryRequest;
use crate::broadcast::{Graft, Handler};

/// Requests remembered at once (their ids and payloads, until after their deadline); a new
/// request beyond this is dropped and counted.
pub const MAX_REMEMBERED: usize = 4096;

/// Ids in one anti-entropy summary.
const SUMMARY_IDS: usize = 512;
/// Largest summary taken from a peer, in bytes.
const MAX_SUMMARY: usize = 64 * 1024;

/// What the handler and the query machine share.
#[derive(Default)]
pub(super) struct Shared {
    /// Requests known here, by broadcast id, with their encoding.
    pub seen: HashMap<Bytes, Bytes>,
    /// Requests merged but not yet handled by the machine.
    pub inbox: VecDeque<QueryRequest>,
    /// Requests dropped because `seen` was full.
    pub dropped_full: u64,
}

/// A handle on the shared state.
#[derive(Clone, Default)]
pub(super) struct SharedState(Arc<Mutex<Shared>>);

impl SharedState {
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The broadcast handler of queries.
pub(super) struct Fanout(pub SharedState);

impl Handler for Fanout {
    fn broadcast_data(&mut self, msg: Bytes) -> (Bytes, Bytes) {
        let id = QueryRequest::decode(&msg)
            .map(|r| r.key())
            .unwrap_or_default();
        (id, msg)
    }

    fn merge(&mut self, id: &Bytes, payload: &Bytes) -> bool {
        let mut s = self.0.lock();
        if s.seen.contains_key(id) {
            return false;
        }
        let Some(request) = QueryRequest::decode(payload) else {
            return false;
        };
        if request.key() != *id {
            return false;
        }
        if s.seen.len() >= MAX_REMEMBERED {
            s.dropped_full += 1;
            return false;
        }
        s.seen.insert(id.clone(), payload.clone());
        s.inbox.push_back(request);
        true
    }

    fn is_stale(&self, id: &Bytes) -> bool {
        let s = self.0.lock();
        s.seen.contains_key(id) || s.seen.len() >= MAX_REMEMBERED
    }

    /// The ids held here (at most [`SUMMARY_IDS`] of them), so a member the tree missed gets
    /// the requests it lacks by anti-entropy; none while nothing is held (no exchange traffic
    /// on a cluster that runs no queries).
    fn summary(&self) -> Option<Bytes> {
        let s = self.0.lock();
        if s.seen.is_empty() {
            return None;
        }
        let ids: Vec<&Bytes> = s.seen.keys().take(SUMMARY_IDS).collect();
        Some(Bytes::from(postcard::to_stdvec(&ids).expect("serializes")))
    }

    fn missing(&mut self, summary: &[u8], limit: usize) -> Vec<(Bytes, Bytes)> {
        if summary.len() > MAX_SUMMARY {
            return Vec::new();
        }
        // An empty summary: the peer holds nothing (it sends none then).
        let theirs = match summary {
            [] => Vec::new(),
            _ => match postcard::from_bytes::<Vec<Bytes>>(summary) {
                Ok(ids) => ids,
                Err(_) => return Vec::new(),
            },
        };
        let theirs: HashSet<Bytes> = theirs.into_iter().take(SUMMARY_IDS).collect();
        let s = self.0.lock();
        (s.seen.iter())
            .filter(|(id, _)| !theirs.contains(*id))
            .take(limit)
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect()
    }

    fn graft(&self, id: &Bytes) -> Graft {
        match self.0.lock().seen.get(id) {
            Some(p) => Graft::Payload(p.clone()),
            None => Graft::Stale,
        }
    }
}
