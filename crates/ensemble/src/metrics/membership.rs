//! Membership's metrics, from the view the driver publishes: members by status, suspicions
//! started and refuted, the time from the first sign of a member's failure (its connection
//! lost, or its suspicion, whichever this node saw first) to its being declared down, and this
//! node's refutations.

use std::collections::HashMap;
use std::time::Instant;

use ensemble_proto::{EventKind, Member, Status};
use metrics::{counter, gauge, histogram};

use super::names::*;

/// What the last look at the view saw of each member.
#[derive(Default)]
pub(crate) struct MembershipMetrics {
    /// Each member's status, and since when it is suspected or its connection lost.
    seen: HashMap<String, (Status, Option<Instant>)>,
    refutations: u64,
}

impl MembershipMetrics {
    /// Looks at the view after a change (`refutations`: the membership machine's count).
    pub(crate) fn observe<'a>(
        &mut self,
        now: Instant,
        members: impl Iterator<Item = &'a Member>,
        refutations: u64,
    ) {
        let mut counts = [0u32; 4];
        let mut seen = HashMap::with_capacity(self.seen.len());
        for m in members {
            counts[status_index(m.status)] += 1;
            let (old, since) = match self.seen.remove_entry(&m.name) {
                Some((name, (old, since))) => {
                    seen.insert(name, (m.status, since));
                    (Some(old), since)
                }
                None => {
                    seen.insert(m.name.clone(), (m.status, None));
                    (None, None)
                }
            };
            if old == Some(m.status) {
                continue;
            }
            let entry = seen.get_mut(&m.name).expect("inserted above");
            match m.status {
                Status::Suspect => {
                    counter!(SUSPICIONS).increment(1);
                    entry.1 = entry.1.or(Some(now));
                }
                Status::Alive if old == Some(Status::Suspect) => {
                    counter!(SUSPICIONS_REFUTED).increment(1);
                    entry.1 = None;
                }
                Status::Down => {
                    if let Some(since) = since {
                        histogram!(DETECTION).record(now.duration_since(since).as_secs_f64());
                    }
                    entry.1 = None;
                }
                _ => entry.1 = None,
            }
        }
        self.seen = seen;
        for (status, n) in STATUSES.iter().zip(counts) {
            gauge!(MEMBERS, "status" => *status).set(f64::from(n));
        }
        if refutations > self.refutations {
            counter!(REFUTATIONS).increment(refutations - self.refutations);
            self.refutations = refutations;
        }
    }

    /// Since when `name` shows a sign of failure (suspected, or its connection lost) as of the
    /// last look, if it does.
    pub(crate) fn failing_since(&self, name: &str) -> Option<Instant> {
        self.seen.get(name).and_then(|(_, since)| *since)
    }

    /// The connection to `name` closed: the first sign of a failure, if it is one.
    pub(crate) fn connection_lost(&mut self, now: Instant, name: &str) {
        if let Some((Status::Alive | Status::Suspect, since)) = self.seen.get_mut(name) {
            since.get_or_insert(now);
        }
    }

    /// A connection to `name` opened: whatever was lost is back.
    pub(crate) fn connection_up(&mut self, name: &str) {
        if let Some((Status::Alive, since)) = self.seen.get_mut(name) {
            *since = None;
        }
    }
}

/// A member event, counted by kind.
pub(crate) fn member_event(kind: EventKind) {
    let kind = match kind {
        EventKind::Up => "up",
        EventKind::Down => "down",
        EventKind::Left => "left",
        EventKind::Updated => "updated",
    };
    counter!(TRANSITIONS_TOTAL, "kind" => kind).increment(1);
}

/// The index of `status` in [`STATUSES`].
fn status_index(status: Status) -> usize {
    match status {
        Status::Alive => 0,
        Status::Suspect => 1,
        Status::Down => 2,
        Status::Left => 3,
    }
}
