//! Accepting connections so that a flood of them cannot starve real peers: at most
//! [`MAX_PENDING_HANDSHAKES`] handshakes in progress in all and
//! `Config::handshakes_per_address` from one source address, a short deadline for the first
//! frame (`Config::first_frame_timeout`), and refusals summed up in one log line per
//! [`SUMMARY_INTERVAL`] instead of a line each.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::conn::{serve, Shared};
use super::handshake::{self, HandshakeError};
use super::session::OVERHEAD;
use super::{authenticated, framed, Inbox};

/// Most handshakes in progress at once on the accepting side.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// How often refusals are summed up in the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections until the listener task is aborted; the connections it accepted are
/// aborted with it.
pub(crate) async fn accept_loop<M: Inbox>(shared: Arc<Shared<M>>, listener: TcpListener) {
    let limit = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let per_address = Arc::new(PerAddress::new(shared.handshakes_per_address));
    let refusals = Arc::new(Refusals::default());
    let mut summary = tokio::time::interval(SUMMARY_INTERVAL);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = summary.tick() => {
                refusals.summarize();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, from) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Dropping the stream closes it.
        let Some(slot) = per_address.take(from.ip()) else {
            refusals.note(
                from,
                "over the per-address limit of handshakes in progress",
                &"",
            );
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            refusals.note(from, "over the limit of handshakes in progress", &"");
            continue;
        };
        let (shared, refusals) = (shared.clone(), refusals.clone());
        connections.spawn(async move {
            let params = shared.params();
            let mut stream = framed(stream);
            let deadlines = (shared.first_frame_timeout, shared.dial_timeout);
            let result = handshake::accept(&mut stream, &params, deadlines).await;
            drop((permit, slot));
            if let Err(e) = &result {
                crate::metrics::handshake_failed(e.label());
            }
            match result {
                Ok((peer, _version, session)) => {
                    authenticated(&mut stream, shared.max_frame + OVERHEAD);
                    let dialer = peer.name.clone();
                    serve(shared, stream, session, peer, dialer, None).await;
                }
                Err(e) if e.is_refusal() => refusals.note(from, "refused", &e),
                Err(e @ HandshakeError::NoHello(_)) => refusals.note(from, "no hello", &e),
                // A dialer that hangs up mid-handshake (it already had a connection to this
                // node, or it is shutting down) is routine.
                Err(e @ HandshakeError::Closed) => {
                    debug!(%from, "closed connection from {from}: {e}")
                }
                Err(e) => info!(%from, "closed connection from {from}: {e}"),
            }
        });
    }
}

/// Handshakes in progress per source address.
struct PerAddress {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress {
            max: max.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a handshake from `ip`, or None if it has its share already.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            of: self.clone(),
            ip,
        })
    }
}

/// One handshake's place in its address's share; given back when dropped.
struct Slot {
    of: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.of.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Refused connections since the last summary.
#[derive(Default)]
struct Refusals(Mutex<Tally>);

#[derive(Default)]
struct Tally {
    /// Whether this interval's first refusal was logged in full already.
    logged_one: bool,
    by_reason: BTreeMap<&'static str, u64>,
    by_address: HashMap<IpAddr, u64>,
    since: Option<Instant>,
}

impl Refusals {
    /// A refused connection: the first of an interval is logged in full, the rest counted.
    fn note(&self, from: SocketAddr, reason: &'static str, detail: &dyn Display) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !t.logged_one {
            t.logged_one = true;
            t.since.get_or_insert_with(Instant::now);
            drop(t);
            let detail = detail.to_string();
            let sep = if detail.is_empty() { "" } else { ": " };
            warn!(%from, reason, %detail, "refused connection from {from} ({reason}){sep}{detail}");
            return;
        }
        *t.by_reason.entry(reason).or_default() += 1;
        *t.by_address.entry(from.ip()).or_default() += 1;
    }

    /// One line for what was counted since the last summary.
    fn summarize(&self) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tally = std::mem::take(&mut *t);
        drop(t);
        let total: u64 = tally.by_reason.values().sum();
        if total == 0 {
            return;
        }
        let secs = tally.since.map_or(0, |s| s.elapsed().as_secs());
        let reasons: Vec<String> = (tally.by_reason.iter())
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        let mut top: Vec<(IpAddr, u64)> = tally.by_address.into_iter().collect();
        top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let top: Vec<String> = top
            .iter()
            .take(3)
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect();
        warn!(
            "refused {total} more connections in the last {secs} s: {}; most from {}",
            reasons.join(", "),
            top.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_of_handshakes_and_no_more() {
        let p = Arc::new(PerAddress::new(2));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let (s1, s2) = (p.take(a).unwrap(), p.take(a).unwrap());
        assert!(p.take(a).is_none());
        assert!(p.take(b).is_some(), "another address is not held back");
        drop(s1);
        let s3 = p.take(a).expect("a slot came back");
        drop((s2, s3));
        assert!(p.counts.lock().unwrap().is_empty());
    }
}
