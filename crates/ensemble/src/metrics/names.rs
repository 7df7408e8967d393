//! Every metric the library records: name, type, unit, labels and meaning, in one table that
//! describes them to the recorder, pre-registers them at zero, and is checked against
//! docs/OPERATIONS.md and the Grafana dashboard by tests.

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of observations (`_bucket`, `_sum`, `_count` in Prometheus).
    Histogram,
}

/// The unit of a metric's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    /// A count of things.
    Count,
    /// Seconds (names end in `_seconds`).
    Seconds,
    /// Bytes (names end in `_bytes`).
    Bytes,
}

/// One metric: its name, type, unit, label and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The metric's name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The unit of its values.
    pub unit: MetricUnit,
    /// Its label, if any, and that label's values known in advance (each is registered at zero
    /// when the node starts; a label with no values listed, such as a table's or singleton's
    /// name, gets its series when the thing it names appears).
    pub label: Option<(&'static str, &'static [&'static str])>,
    /// What it counts or measures.
    pub help: &'static str,
}

use MetricKind::{Counter, Gauge, Histogram};
use MetricUnit::{Bytes, Count, Seconds};

const fn m(
    name: &'static str,
    kind: MetricKind,
    unit: MetricUnit,
    label: Option<(&'static str, &'static [&'static str])>,
    help: &'static str,
) -> MetricInfo {
    MetricInfo {
        name,
        kind,
        unit,
        label,
        help,
    }
}

pub(crate) const STATUSES: &[&str] = &["alive", "suspect", "down", "left"];
pub(crate) const TRANSITIONS: &[&str] = &["up", "down", "left", "updated"];
pub(crate) const DIRECTIONS: &[&str] = &["dialed", "accepted"];
pub(crate) const CLOSE_REASONS: &[&str] = &["peer", "local", "stopped", "error"];
pub(crate) const HANDSHAKE_REASONS: &[&str] = &[
    "no_listener",
    "timeout",
    "refused_by_peer",
    "refused",
    "malformed",
    "error",
];
pub(crate) const DROP_REASONS: &[&str] = &["queue_full", "queue_bytes", "lazy_shed"];
pub(crate) const MESSAGE_FAILURES: &[&str] = &["timeout", "unknown_name", "unreachable"];
pub(crate) const MESSAGE_DROPS: &[&str] = &["mailbox_full", "no_handler"];
pub(crate) const REMERGE_RESULTS: &[&str] = &["ok", "failed"];
pub(crate) const GET_NODES_RESULTS: &[&str] = &["ok", "error"];
pub(crate) const PHASES: &[&str] = &["initial", "regular"];
pub(crate) const TRACKER_STATUSES: &[&str] = &["online", "offline"];

pub(crate) const MEMBERS: &str = "ensemble_members";
pub(crate) const TRANSITIONS_TOTAL: &str = "ensemble_member_transitions_total";
pub(crate) const SUSPICIONS: &str = "ensemble_suspicions_total";
pub(crate) const SUSPICIONS_REFUTED: &str = "ensemble_suspicions_refuted_total";
pub(crate) const DETECTION: &str = "ensemble_detection_seconds";
pub(crate) const REFUTATIONS: &str = "ensemble_refutations_total";
pub(crate) const CONNECTIONS: &str = "ensemble_connections";
pub(crate) const OPENED: &str = "ensemble_connections_opened_total";
pub(crate) const CLOSED: &str = "ensemble_connections_closed_total";
pub(crate) const HANDSHAKES_FAILED: &str = "ensemble_handshakes_failed_total";
pub(crate) const RECEIVED_BYTES: &str = "ensemble_received_bytes_total";
pub(crate) const RECEIVED_FRAMES: &str = "ensemble_received_frames_total";
pub(crate) const SENT_BYTES: &str = "ensemble_sent_bytes_total";
pub(crate) const SENT_FRAMES: &str = "ensemble_sent_frames_total";
pub(crate) const DROPPED_FRAMES: &str = "ensemble_dropped_frames_total";
pub(crate) const SEND_QUEUE: &str = "ensemble_send_queue_bytes";
pub(crate) const NEIGHBOURS: &str = "ensemble_broadcast_neighbours";
pub(crate) const EXCHANGES_RUNNING: &str = "ensemble_broadcast_exchanges_running";
pub(crate) const MSG_SENT: &str = "ensemble_messages_sent_total";
pub(crate) const MSG_DELIVERED: &str = "ensemble_messages_delivered_total";
pub(crate) const MSG_ACKED: &str = "ensemble_messages_acked_total";
pub(crate) const MSG_FAILED: &str = "ensemble_messages_failed_total";
pub(crate) const MSG_DROPPED: &str = "ensemble_messages_dropped_total";
pub(crate) const MSG_RTT: &str = "ensemble_message_round_trip_seconds";
pub(crate) const MSG_RETRANSMITTED: &str = "ensemble_messages_retransmitted_total";
pub(crate) const MSG_RELAYED: &str = "ensemble_messages_relayed_total";
pub(crate) const MSG_RELAY_DROPPED: &str = "ensemble_messages_relay_dropped_total";
pub(crate) const TABLE_RECORDS: &str = "ensemble_table_records";
pub(crate) const TABLE_BYTES: &str = "ensemble_table_bytes";
pub(crate) const TABLE_WRITES: &str = "ensemble_table_writes_total";
pub(crate) const TABLE_WRITE_SECONDS: &str = "ensemble_table_write_seconds";
pub(crate) const TABLE_JOINS: &str = "ensemble_table_joins_total";
pub(crate) const TABLE_JOIN_SECONDS: &str = "ensemble_table_join_seconds";
pub(crate) const TABLE_CONFLICTS: &str = "ensemble_table_conflicts_resolved_total";
pub(crate) const DISCOVERY_GET_NODES: &str = "ensemble_discovery_get_nodes_total";
pub(crate) const DISCOVERY_PHASE: &str = "ensemble_discovery_phase";
pub(crate) const DISCOVERY_DISCOVERED: &str = "ensemble_discovery_discovered_nodes";
pub(crate) const DISCOVERY_UNAVAILABLE: &str = "ensemble_discovery_unavailable_nodes";
pub(crate) const TRACKER_NODES: &str = "ensemble_tracker_nodes";
pub(crate) const TABLE_CHANGES: &str = "ensemble_table_changes_total";
pub(crate) const TABLE_REMERGES: &str = "ensemble_table_remerges_total";
pub(crate) const TABLE_REPLICAS_DOWN: &str = "ensemble_table_replicas_down_total";
pub(crate) const BC_SENT: &str = "ensemble_broadcast_sent_total";
pub(crate) const BC_DELIVERED: &str = "ensemble_broadcast_delivered_total";
pub(crate) const BC_DUPLICATES: &str = "ensemble_broadcast_duplicates_total";
pub(crate) const BC_GRAFTS: &str = "ensemble_broadcast_grafts_total";
pub(crate) const BC_PRUNES: &str = "ensemble_broadcast_prunes_total";
pub(crate) const BC_REPAIRED: &str = "ensemble_broadcast_repaired_total";
pub(crate) const BC_EXCHANGES: &str = "ensemble_broadcast_exchanges_total";
pub(crate) const BC_LOST: &str = "ensemble_broadcast_lost_total";
pub(crate) const BC_UNKNOWN_HANDLER: &str = "ensemble_broadcast_unknown_handler_total";
pub(crate) const BC_LAZY_SHED: &str = "ensemble_broadcast_lazy_shed_total";
pub(crate) const SINGLETON_LEADER: &str = "ensemble_singleton_leader";
pub(crate) const SINGLETON_EPOCH: &str = "ensemble_singleton_epoch";
pub(crate) const SINGLETON_TAKEOVERS: &str = "ensemble_singleton_takeovers_total";
pub(crate) const BUILD_INFO: &str = "ensemble_build_info";
pub(crate) const CPU: &str = "process_cpu_seconds_total";
pub(crate) const RSS: &str = "process_resident_memory_bytes";
pub(crate) const FDS: &str = "process_open_fds";
pub(crate) const START_TIME: &str = "process_start_time_seconds";
pub(crate) const THREADS: &str = "process_threads";

/// Every metric the library records, in the order of docs/OPERATIONS.md's reference.
pub const METRICS: &[MetricInfo] = &[
    m(MEMBERS, Gauge, Count, Some(("status", STATUSES)), "Members in this node's view, by status."),
    m(TRANSITIONS_TOTAL, Counter, Count, Some(("kind", TRANSITIONS)), "Member events by kind: up (joined or came back), down, left, updated (address, tags or incarnation)."),
    m(SUSPICIONS, Counter, Count, None, "Members that became suspect."),
    m(SUSPICIONS_REFUTED, Counter, Count, None, "Suspect members that came back alive (the suspicion was refuted)."),
    m(DETECTION, Histogram, Seconds, None, "Time from the first sign of a member's failure this node saw (its connection lost, or its suspicion) to its being declared down."),
    m(REFUTATIONS, Counter, Count, None, "Times this node refuted news about itself (a suspicion or a failure) with a higher incarnation."),
    m(CONNECTIONS, Gauge, Count, None, "Connections open to other members."),
    m(OPENED, Counter, Count, Some(("direction", DIRECTIONS)), "Connections established (handshake done), by direction."),
    m(CLOSED, Counter, Count, Some(("reason", CLOSE_REASONS)), "Connections closed, by reason: peer (closed or reset by the peer), local (replaced, partitioned, leaving), stopped (the node stopped), error (bad frame, write timeout, socket error)."),
    m(HANDSHAKES_FAILED, Counter, Count, Some(("reason", HANDSHAKE_REASONS)), "Dials and accepted connections that did not complete the handshake, by reason."),
    m(RECEIVED_BYTES, Counter, Bytes, None, "Bytes of frames received (sealed, after the handshake)."),
    m(RECEIVED_FRAMES, Counter, Count, None, "Frames received after the handshake."),
    m(SENT_BYTES, Counter, Bytes, None, "Bytes written to connections after the handshake."),
    m(SENT_FRAMES, Counter, Count, None, "Frames written to connections after the handshake."),
    m(DROPPED_FRAMES, Counter, Count, Some(("reason", DROP_REASONS)), "Frames not sent to a slow peer, by reason: queue_full, queue_bytes (the send queue byte limit), lazy_shed (announcements shed while a queue fills)."),
    m(SEND_QUEUE, Gauge, Bytes, None, "Bytes waiting in the send queues of every connection."),
    m(NEIGHBOURS, Gauge, Count, None, "The broadcast tree's neighbours of this node."),
    m(EXCHANGES_RUNNING, Gauge, Count, None, "Anti-entropy exchanges in progress."),
    m(BC_SENT, Counter, Count, None, "Broadcasts sent from this node."),
    m(BC_DELIVERED, Counter, Count, None, "Broadcasts delivered to this node's handlers."),
    m(BC_DUPLICATES, Counter, Count, None, "Broadcast payloads received again (eager-push redundancy)."),
    m(BC_GRAFTS, Counter, Count, None, "Grafts sent: a missing broadcast asked for along a lazy link."),
    m(BC_PRUNES, Counter, Count, None, "Prunes sent: an eager link demoted to lazy."),
    m(BC_REPAIRED, Counter, Count, None, "Broadcasts recovered by anti-entropy exchanges."),
    m(BC_EXCHANGES, Counter, Count, None, "Anti-entropy exchanges run."),
    m(BC_LOST, Counter, Count, None, "Broadcasts known missed and no longer recoverable."),
    m(BC_UNKNOWN_HANDLER, Counter, Count, None, "Broadcasts for a handler this node does not have."),
    m(BC_LAZY_SHED, Counter, Count, None, "Announcements the broadcast machine left out of full lazy queues."),
    m(MSG_SENT, Counter, Count, None, "Named messages sent to other members (casts and acknowledged sends)."),
    m(MSG_DELIVERED, Counter, Count, None, "Named messages handed to this node's mailboxes."),
    m(MSG_ACKED, Counter, Count, None, "Acknowledged sends whose acknowledgement came back."),
    m(MSG_FAILED, Counter, Count, Some(("reason", MESSAGE_FAILURES)), "Acknowledged sends that failed, by reason."),
    m(MSG_DROPPED, Counter, Count, Some(("reason", MESSAGE_DROPS)), "Named messages received and dropped, by reason: mailbox_full, no_handler (a cast reached a member with no handler of that name)."),
    m(MSG_RTT, Histogram, Seconds, None, "Time from an acknowledged send to its acknowledgement."),
    m(MSG_RETRANSMITTED, Counter, Count, None, "Acknowledged sends sent again: no acknowledgement within the retry interval, or the receiver reconnected."),
    m(MSG_RELAYED, Counter, Count, None, "Named messages this node passed on for two members that are not connected (client-server topology)."),
    m(MSG_RELAY_DROPPED, Counter, Count, None, "Relayed named messages dropped here: no route to the receiver, or no relays left."),
    m(TABLE_CHANGES, Counter, Count, Some(("table", &[])), "Records changed in this node's replica of each table (local writes and replicated ones)."),
    m(TABLE_RECORDS, Gauge, Count, Some(("table", &[])), "Live records in this node's replica of each table."),
    m(TABLE_BYTES, Gauge, Bytes, Some(("table", &[])), "Estimated bytes of this node's replica of each table (keys, values and bookkeeping)."),
    m(TABLE_WRITES, Counter, Count, Some(("table", &[])), "Write operations (inserts and deletes) made through this node, per table."),
    m(TABLE_WRITE_SECONDS, Histogram, Seconds, Some(("table", &[])), "Time from a write made through this node to every replica's acknowledgement, per table."),
    m(TABLE_JOINS, Counter, Count, Some(("table", &[])), "Joins of two segments of a table that this node coordinated and completed (callers' joins and automatic re-merges)."),
    m(TABLE_JOIN_SECONDS, Histogram, Seconds, Some(("table", &[])), "Time a join this node coordinated took, from pausing the replicas to the last one applying the merge."),
    m(TABLE_CONFLICTS, Counter, Count, Some(("table", &[])), "Keys two joined segments held with different values, settled by the table's conflict handler (or the later write)."),
    m(TABLE_REMERGES, Counter, Count, Some(("result", REMERGE_RESULTS)), "Table re-merges with a member that came back, by result."),
    m(TABLE_REPLICAS_DOWN, Counter, Count, None, "Replicas of a table seen going down."),
    m(SINGLETON_LEADER, Gauge, Count, Some(("singleton", &[])), "1 while this node leads the singleton, else 0."),
    m(SINGLETON_EPOCH, Gauge, Count, Some(("singleton", &[])), "The fencing epoch of this node's last leadership of the singleton."),
    m(SINGLETON_TAKEOVERS, Counter, Count, Some(("singleton", &[])), "Times this node became the singleton's leader."),
    m(DISCOVERY_GET_NODES, Counter, Count, Some(("result", GET_NODES_RESULTS)), "Discovery backend `get_nodes` calls that ended, by result (an error includes a timeout)."),
    m(DISCOVERY_PHASE, Gauge, Count, Some(("phase", PHASES)), "1 for discovery's current phase (initial: polling often at startup; regular), else 0; both 0 without discovery."),
    m(DISCOVERY_DISCOVERED, Gauge, Count, None, "Addresses the last successful `get_nodes` returned, this node's own included."),
    m(DISCOVERY_UNAVAILABLE, Gauge, Count, None, "Discovered addresses that failed their probe or went down."),
    m(TRACKER_NODES, Gauge, Count, Some(("status", TRACKER_STATUSES)), "Rows of the node tracker by status, as this node reads them (0 until the tracker runs here)."),
    m(BUILD_INFO, Gauge, Count, None, "Always 1; labels version (the crate's) and protocol (the wire protocol version)."),
    m(CPU, Counter, Seconds, None, "CPU time of the process, user and system (Linux; refreshed by `record_process`)."),
    m(RSS, Gauge, Bytes, None, "Resident memory of the process (Linux)."),
    m(FDS, Gauge, Count, None, "Open file descriptors of the process (Linux)."),
    m(START_TIME, Gauge, Seconds, None, "Start time of the process since the Unix epoch (Linux)."),
    m(THREADS, Gauge, Count, None, "Threads of the process (Linux)."),
];

/// The name of every metric the library describes.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().map(|m| m.name)
}
