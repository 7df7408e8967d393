//! The agent's log lines for its monitors (`GET /v1/monitor`, `ensemble monitor`): a tracing
//! layer ([`LogHub::layer`]) that turns each event into one JSON record and offers it to the
//! monitors connected, each with its own level.
//!
//! Free while no monitor is connected: the layer's filter enables nothing then, and its level
//! hint lets tracing skip the callsites no other layer wants. Bounded: at most
//! [`MAX_MONITORS`] monitors at once, each [`BUFFER`] records behind at most; a slower one
//! loses the oldest records and is told how many ([`Next::Dropped`]). The agent never waits
//! for a monitor.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Most monitors connected at once.
pub const MAX_MONITORS: usize = 8;
/// Records a monitor may be behind before it loses the oldest.
pub const BUFFER: usize = 1024;
/// Longest field value (the message included) in a record, in bytes; longer ones are cut.
pub const MAX_FIELD: usize = 8 * 1024;

/// A monitor's level: it receives the records at this level and the more severe ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MonitorLevel(u8);

impl MonitorLevel {
    pub const NAMES: [&'static str; 5] = ["error", "warn", "info", "debug", "trace"];

    /// `error`, `warn`, `info`, `debug` or `trace` (any case).
    pub fn parse(s: &str) -> Option<MonitorLevel> {
        let i = Self::NAMES.iter().position(|n| n.eq_ignore_ascii_case(s))?;
        Some(MonitorLevel(i as u8 + 1))
    }

    fn of(level: &Level) -> u8 {
        match *level {
            Level::ERROR => 1,
            Level::WARN => 2,
            Level::INFO => 3,
            Level::DEBUG => 4,
            Level::TRACE => 5,
        }
    }
}

/// One log record: its level rank and its JSON line (without the newline).
#[derive(Debug)]
pub struct Record {
    rank: u8,
    pub line: String,
}

/// Where the layer offers records and monitors subscribe; cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Arc<Record>>,
    /// Monitors connected, per level (index: rank - 1).
    levels: Mutex<[usize; 5]>,
    /// The most verbose level rank a monitor asks for; 0: no monitor.
    max: AtomicU8,
}

/// Why a monitor was refused.
#[derive(Debug)]
pub struct TooManyMonitors;

impl Default for LogHub {
    fn default() -> Self {
        LogHub {
            inner: Arc::new(Inner {
                sender: broadcast::channel(BUFFER).0,
                levels: Mutex::new([0; 5]),
                max: AtomicU8::new(0),
            }),
        }
    }
}

impl LogHub {
    /// The layer feeding this hub, filtered to what its monitors ask for.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        HubLayer(self.clone()).with_filter(HubFilter(self.clone()))
    }

    /// A new monitor at `level`, unless [`MAX_MONITORS`] are connected.
    pub fn subscribe(&self, level: MonitorLevel) -> Result<Monitor, TooManyMonitors> {
        let mut levels = self.lock();
        if levels.iter().sum::<usize>() >= MAX_MONITORS {
            return Err(TooManyMonitors);
        }
        levels[level.0 as usize - 1] += 1;
        let receiver = self.inner.sender.subscribe();
        self.levels_changed(&levels);
        Ok(Monitor {
            hub: self.clone(),
            receiver,
            level,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [usize; 5]> {
        self.inner.levels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the most verbose level wanted; tracing re-reads the filters' hints if it moved.
    fn levels_changed(&self, levels: &[usize; 5]) {
        let max = levels
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, |i| i as u8 + 1);
        if self.inner.max.swap(max, Ordering::Relaxed) != max {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    fn max(&self) -> u8 {
        self.inner.max.load(Ordering::Relaxed)
    }
}

/// What a monitor receives next.
#[derive(Debug)]
pub enum Next {
    /// A record at the monitor's level or more severe.
    Line(Arc<Record>),
    /// The monitor fell behind and lost this many records (of every level).
    Dropped(u64),
}

/// A connected monitor; disconnects when dropped.
pub struct Monitor {
    hub: LogHub,
    receiver: broadcast::Receiver<Arc<Record>>,
    level: MonitorLevel,
}

impl Monitor {
    /// The next record for this monitor (None: the hub is gone).
    pub async fn next(&mut self) -> Option<Next> {
        loop {
            match self.receiver.recv().await {
                Ok(r) if r.rank <= self.level.0 => return Some(Next::Line(r)),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => return Some(Next::Dropped(n)),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let mut levels = self.hub.lock();
        levels[self.level.0 as usize - 1] -= 1;
        self.hub.levels_changed(&levels);
    }
}

/// Enables the events at the most verbose level a monitor asks for, none without monitors.
struct HubFilter(LogHub);

impl<S> Filter<S> for HubFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        MonitorLevel::of(meta.level()) <= self.0.max()
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per event: monitors come and go.
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.0.max() {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }
}

/// Turns events into records for the hub.
struct HubLayer(LogHub);

impl<S: Subscriber> Layer<S> for HubLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = Map::new();
        let mut timestamp = String::new();
        let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(
            &mut timestamp,
        ));
        record.insert("timestamp".into(), timestamp.into());
        record.insert("level".into(), meta.level().as_str().into());
        record.insert("target".into(), meta.target().into());
        event.record(&mut Fields(&mut record));
        let line = Value::Object(record).to_string();
        let rank = MonitorLevel::of(meta.level());
        // No receiver left (the last monitor just went): nothing to do.
        let _ = self.0.inner.sender.send(Arc::new(Record { rank, line }));
    }
}

/// An event's fields into a JSON object, strings cut at [`MAX_FIELD`] bytes.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn text(&mut self, field: &Field, mut s: String) {
        if s.len() > MAX_FIELD {
            let mut end = MAX_FIELD;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
        self.0.insert(field.name().into(), s.into());
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.text(field, format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Tracing's level cache is global: one test of it at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn hub_subscriber(hub: &LogHub) -> impl Subscriber + Send + Sync {
        tracing_subscriber::registry().with(hub.layer())
    }

    fn next(m: &mut Monitor) -> Option<Next> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(m.next())
    }

    #[test]
    fn a_monitor_gets_its_level_and_is_told_what_it_lost() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let hub = LogHub::default();
        let _guard = tracing::subscriber::set_default(hub_subscriber(&hub));
        tracing::info!("before any monitor");
        let mut m = hub.subscribe(MonitorLevel::parse("info").unwrap()).unwrap();
        tracing::debug!("too verbose");
        tracing::info!(node = "n1", incarnation = 3u64, "member n1 is up");
        let Some(Next::Line(r)) = next(&mut m) else {
            panic!("no line")
        };
        let v: Value = serde_json::from_str(&r.line).unwrap();
        assert_eq!(v["message"], "member n1 is up");
        assert_eq!(v["node"], "n1");
        assert_eq!(v["incarnation"], 3);
        assert_eq!(v["level"], "INFO");
        for i in 0..BUFFER + 10 {
            tracing::warn!("line {i}");
        }
        match next(&mut m) {
            Some(Next::Dropped(n)) => assert_eq!(n, 10),
            other => panic!("expected a drop notice, got {other:?}"),
        }
    }

    #[test]
    fn at_most_max_monitors() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let hub = LogHub::default();
        let level = MonitorLevel::parse("DEBUG").unwrap();
        let mut held: Vec<Monitor> = (0..MAX_MONITORS)
            .map(|_| hub.subscribe(level).unwrap())
            .collect();
        assert!(hub.subscribe(level).is_err());
        assert_eq!(hub.max(), 4);
        held.pop();
        assert!(hub.subscribe(level).is_ok());
        held.clear();
        assert_eq!(hub.max(), 0);
        assert!(MonitorLevel::parse("loud").is_none());
    }
}
