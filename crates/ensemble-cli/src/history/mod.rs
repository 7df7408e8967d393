//! The agent's history (`GET /v1/history`, the dashboard's timeline): what it saw happen over
//! the last hour, at most [`MAX_ENTRIES`] entries, kept whether or not anyone reads it. The
//! entries come from `collect.rs`, which follows the node's own streams (membership events,
//! the published member list for suspicions, table joins, partitions) and the singletons'
//! leader changes the agent's singleton runner reports ([`History::poke_singletons`]).
//!
//! Bounded: the oldest entries go when there are more than [`MAX_ENTRIES`], or when they are
//! older than [`MAX_AGE`]. Costs a lock and a push per entry, nothing while nobody reads.

mod collect;

pub use collect::spawn;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::views::{HistoryEntry, HistoryView};

/// Most entries kept.
pub const MAX_ENTRIES: usize = 10_000;
/// How long an entry is kept.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// The agent's history, shared by the collector and the route. Cheap to clone.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Entries>>,
    /// Wakes the collector to look at the singletons again (capacity 1: pokes merge).
    singletons: mpsc::Sender<()>,
}

struct Entries {
    entries: VecDeque<HistoryEntry>,
    last_seq: u64,
    max_entries: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl History {
    /// An empty history, and the receiver of singleton pokes for the collector.
    pub fn new() -> (History, mpsc::Receiver<()>) {
        Self::with_max(MAX_ENTRIES)
    }

    fn with_max(max_entries: usize) -> (History, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        let entries = Entries {
            entries: VecDeque::new(),
            last_seq: 0,
            max_entries,
        };
        let h = History {
            inner: Arc::new(Mutex::new(entries)),
            singletons: tx,
        };
        (h, rx)
    }

    /// Records `entry` now (its `seq` and `at_ms` set here).
    pub fn record(&self, entry: HistoryEntry) {
        self.record_at(entry, now_ms());
    }

    fn record_at(&self, mut entry: HistoryEntry, at_ms: u64) {
        let mut e = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        e.last_seq += 1;
        entry.seq = e.last_seq;
        entry.at_ms = at_ms;
        e.entries.push_back(entry);
        e.expire(at_ms);
    }

    /// A singleton's leader may have changed: the collector looks again.
    pub fn poke_singletons(&self) {
        let _ = self.singletons.try_send(());
    }

    /// The entries recorded at or after `since_ms` with a `seq` above `after`, oldest first.
    pub fn read(&self, since_ms: u64, after: u64) -> HistoryView {
        let mut e = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        e.expire(now_ms());
        // Entries are in seq order: skip those at or below `after` by position.
        let first = e.entries.front().map_or(0, |f| f.seq);
        let skip =
            usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        HistoryView {
            entries: e
                .entries
                .iter()
                .skip(skip)
                .filter(|x| x.at_ms >= since_ms)
                .cloned()
                .collect(),
            last_seq: e.last_seq,
            max_entries: e.max_entries,
            max_age_ms: MAX_AGE.as_millis() as u64,
        }
    }
}

impl Entries {
    fn expire(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(MAX_AGE.as_millis() as u64);
        while self.entries.len() > self.max_entries
            || self.entries.front().is_some_and(|f| f.at_ms < oldest)
        {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::HistoryKind;

    fn entry(member: &str) -> HistoryEntry {
        HistoryEntry {
            member: Some(member.into()),
            ..HistoryEntry::new(HistoryKind::Down)
        }
    }

    #[test]
    fn keeps_at_most_max_entries_and_reads_after_a_seq() {
        let (h, _rx) = History::with_max(3);
        for i in 0..5 {
            h.record(entry(&format!("m{i}")));
        }
        let all = h.read(0, 0);
        assert_eq!(all.last_seq, 5);
        let names: Vec<_> = all
            .entries
            .iter()
            .map(|e| e.member.clone().unwrap())
            .collect();
        assert_eq!(names, ["m2", "m3", "m4"]);
        assert_eq!(all.entries[0].seq, 3);
        let next = h.read(0, 4);
        assert_eq!(next.entries.len(), 1);
        assert_eq!(next.entries[0].seq, 5);
        assert!(h.read(0, 5).entries.is_empty());
        assert!(h.read(0, u64::MAX).entries.is_empty());
    }

    #[test]
    fn forgets_entries_older_than_an_hour() {
        let (h, _rx) = History::with_max(10);
        let now = now_ms();
        let hour = MAX_AGE.as_millis() as u64;
        h.record_at(entry("old"), now - hour - 1000);
        h.record_at(entry("recent"), now - 1000);
        let all = h.read(0, 0);
        assert_eq!(all.entries.len(), 1);
        assert_eq!(all.entries[0].member.as_deref(), Some("recent"));
        assert!(h.read(now, 0).entries.is_empty());
    }
}
