//! The user-event handler's calls on bytes from peers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::broadcast::events::{EventLog, UserEvent};
use crate::broadcast::{Graft, Handler};

/// Most calls of one input that are made.
const MAX_CALLS: usize = 4096;

/// `bytes` as a sequence of [`super::items`], each a call of the user-event handler
/// ([`EventLog`]) on bytes a peer sent, picked by `ctl % 6`: `merge` of a payload (a
/// broadcast's or an exchange's), `is_stale` and `graft` of an id (from an `ihave` or a
/// graft), `missing` for a summary (an exchange; `ctl / 8` is the limit), or, from this node,
/// `broadcast_data` of an application's message and `summary`. Nothing may panic; events
/// reach the application once each, in order per stream (sequence numbers from 1, strictly
/// increasing), and what `missing` and `graft` hand out are events the log took.
pub fn user_events(bytes: &[u8]) {
    let delivered: Arc<Mutex<Vec<UserEvent>>> = Arc::default();
    let sink = delivered.clone();
    let mut log = EventLog::new("n0".into(), 1, 64, move |e| {
        sink.lock().expect("not poisoned").push(e)
    });
    for (ctl, data) in super::items(bytes).take(MAX_CALLS) {
        let data = Bytes::copy_from_slice(data);
        match ctl % 6 {
            0 => {
                log.merge(&Bytes::new(), &data);
            }
            1 => {
                log.is_stale(&data);
            }
            2 => {
                if let Graft::Payload(p) = log.graft(&data) {
                    assert!(postcard::from_bytes::<UserEvent>(&p).is_ok(), "graft");
                }
            }
            3 => {
                for (_, p) in log.missing(&data, usize::from(ctl / 8)) {
                    assert!(postcard::from_bytes::<UserEvent>(&p).is_ok(), "missing");
                }
            }
            4 => {
                // As `Plumtree` does: the new event is merged here first. (A peer may have
                // sent events in this node's name before, so it need not be new.)
                let (id, payload) = log.broadcast_data(data);
                log.merge(&id, &payload);
            }
            _ => {
                log.summary();
            }
        }
    }
    let mut last: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for e in delivered.lock().expect("not poisoned").iter() {
        let before = last.insert((e.origin.clone(), e.stream), e.seq);
        assert!(
            e.seq > before.unwrap_or(0),
            "{}/{} delivered {} after {before:?}",
            e.origin,
            e.stream,
            e.seq
        );
    }
}
