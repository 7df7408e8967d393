//! The gauges the driver reads from its own state rather than records as things happen: open
//! connections, bytes in the send queues, the broadcast tree's neighbours and exchanges, the
//! tables' records and bytes, and the broadcast and messaging machines' counters. Set on timer
//! ticks, at most every [`GAUGES_EVERY`].

use std::time::{Duration, Instant};

use metrics::{counter, gauge};

use super::Driver;
use crate::metrics::*;

/// How often the gauges are set at most.
const GAUGES_EVERY: Duration = Duration::from_millis(250);

impl Driver {
    pub(super) fn record_gauges(&mut self, now: Instant) {
        if self.gauges_at.is_some_and(|at| now < at + GAUGES_EVERY) {
            return;
        }
        self.gauges_at = Some(now);
        gauge!(CONNECTIONS).set(self.conns.len() as f64);
        let queued: usize = self.conns.values().map(|a| a.outbox.queued_bytes()).sum();
        gauge!(SEND_QUEUE).set(queued as f64);
        let p = self.core.broadcast();
        gauge!(NEIGHBOURS).set(p.neighbours().count() as f64);
        gauge!(EXCHANGES_RUNNING).set(p.exchanges().len() as f64);
        let s = p.stats();
        for (name, v) in [
            (BC_SENT, s.broadcasts),
            (BC_DELIVERED, s.delivered),
            (BC_DUPLICATES, s.duplicates),
            (BC_GRAFTS, s.grafts),
            (BC_PRUNES, s.prunes),
            (BC_REPAIRED, s.repaired),
            (BC_EXCHANGES, s.exchanges),
            (BC_LOST, s.lost),
            (BC_UNKNOWN_HANDLER, s.unknown_handler),
            (BC_LAZY_SHED, s.lazy_shed),
        ] {
            counter!(name).absolute(v);
        }
        let (relayed, relay_dropped) = self.core.relay_counts();
        counter!(MSG_RELAYED).absolute(relayed);
        counter!(MSG_RELAY_DROPPED).absolute(relay_dropped);
        counter!(MSG_RETRANSMITTED).absolute(self.core.messaging().retransmitted());
        for (table, records, bytes) in self.core.tables().sizes() {
            let label = [("table", table.to_owned())];
            gauge!(TABLE_RECORDS, &label).set(records as f64);
            gauge!(TABLE_BYTES, &label).set(bytes as f64);
        }
    }
}
