//! `ensemble agent --query-handler NAME=COMMAND`: answers queries named NAME with COMMAND's
//! output (Serf's query handlers). COMMAND runs as event handlers do (`sh -c`, none of the
//! agent's secrets in its environment), with the payload on stdin and the query in
//! ENSEMBLE_QUERY_NAME / ENSEMBLE_QUERY_ORIGIN; its stdout, cut at the response limit, is the
//! response. It is killed when the query's deadline comes first (no response then). At most
//! [`MAX_RUNNING`] commands run at once on an agent: a query beyond that is acked but gets no
//! response.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use ensemble::{IncomingQuery, Node, MAX_QUERY_RESPONSE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdout;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::event_handler::{kill_group, spawn_shell};
use super::settings::FileSettings;

/// Query commands running at once on one agent.
pub const MAX_RUNNING: usize = 4;
/// A command is killed this long before the query's deadline, so its process group goes
/// with it before the node stops listening for the response.
const MARGIN: Duration = Duration::from_millis(100);

/// The agent's query handlers: a command per query name, replaced whole on SIGHUP.
#[derive(Clone)]
pub struct QueryHandlers {
    node: Node,
    /// The command of each name now.
    current: Arc<RwLock<BTreeMap<String, Arc<str>>>>,
    /// Names with a handler on the node. A name SIGHUP dropped stays registered and answers
    /// as a name without a handler does: an ack, no response.
    registered: Arc<tokio::sync::Mutex<BTreeSet<String>>>,
    /// `--query-handler` (they win over the config file's on SIGHUP too).
    flags: Vec<(String, String)>,
    slots: Arc<Semaphore>,
    busy: Arc<AtomicU64>,
}

impl QueryHandlers {
    /// Registers a handler per `(name, command)` of `handlers`; `flags` are those of them the
    /// command line gave. Fails if a name is taken.
    pub async fn start(
        node: &Node,
        handlers: Vec<(String, String)>,
        flags: Vec<(String, String)>,
    ) -> Result<QueryHandlers> {
        let this = QueryHandlers {
            node: node.clone(),
            current: Arc::default(),
            registered: Arc::default(),
            flags,
            slots: Arc::new(Semaphore::new(MAX_RUNNING)),
            busy: Arc::default(),
        };
        this.install(handlers).await?;
        Ok(this)
    }

    /// SIGHUP: the query handlers of the config file `file` and of the flags; logs the names
    /// that changed (not the commands). Bad names keep the handlers as they were.
    pub async fn reload(&self, file: &FileSettings) {
        let new = match super::config::query_handlers(file, &self.flags) {
            Ok(new) => new,
            Err(e) => return warn!("SIGHUP: kept the query handlers as they were: {e:#}"),
        };
        let old = self.names();
        let changed = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            current.len() != new.len()
                || new
                    .iter()
                    .any(|(n, c)| current.get(n).is_none_or(|old| **old != **c))
        };
        if !changed {
            return debug!("SIGHUP: the query handlers are unchanged");
        }
        match self.install(new).await {
            Ok(()) => info!("SIGHUP: query handlers [{old}] -> [{}]", self.names()),
            Err(e) => warn!("SIGHUP: query handlers not all installed: {e:#}"),
        }
    }

    fn names(&self) -> String {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.keys().cloned().collect::<Vec<_>>().join(" ")
    }

    /// Makes `handlers` the commands, registering the names the node does not have yet.
    async fn install(&self, handlers: Vec<(String, String)>) -> Result<()> {
        let names: Vec<String> = handlers.iter().map(|(n, _)| n.clone()).collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = handlers
            .into_iter()
            .map(|(n, c)| (n, Arc::from(c)))
            .collect();
        let mut registered = self.registered.lock().await;
        for name in names {
            if registered.contains(&name) {
                continue;
            }
            self.register(&name).await?;
            registered.insert(name);
        }
        Ok(())
    }

    async fn register(&self, name: &str) -> Result<()> {
        let me: Arc<str> = self.node.name().into();
        let (current, slots, busy) = (self.current.clone(), self.slots.clone(), self.busy.clone());
        let owned = name.to_owned();
        let handler = move |q: IncomingQuery| {
            let cmd = current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&owned)
                .cloned();
            let (me, slots, busy) = (me.clone(), slots.clone(), busy.clone());
            async move {
                let cmd = cmd?;
                let Ok(_running) = slots.try_acquire_owned() else {
                    let n = busy.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        warn!("{MAX_RUNNING} query commands are running: query {:?} from {} gets no response ({n} so far)", q.name, q.query.origin);
                    }
                    return None;
                };
                answer(&cmd, &me, q).await
            }
        };
        self.node
            .register_query_handler(name, handler)
            .await
            .with_context(|| format!("cannot register query handler {name:?} (--query-handler)"))
    }
}

/// Runs `cmd` for the query `q`; its output, or None if it could not start or outlived the
/// deadline.
async fn answer(cmd: &str, me: &str, q: IncomingQuery) -> Option<Bytes> {
    let vars = vec![
        ("ENSEMBLE_EVENT", "query".to_owned()),
        ("ENSEMBLE_SELF_NAME", me.to_owned()),
        ("ENSEMBLE_QUERY_NAME", q.name.clone()),
        ("ENSEMBLE_QUERY_ORIGIN", q.query.origin.clone()),
    ];
    let mut child = match spawn_shell(cmd, vars, Stdio::piped()) {
        Ok(c) => c,
        Err(err) => {
            warn!("query handler {cmd:?} could not start: {err}");
            return None;
        }
    };
    let (input, output) = (child.stdin.take(), child.stdout.take());
    let deadline = tokio::time::Instant::from_std(q.deadline);
    let deadline = deadline.checked_sub(MARGIN).unwrap_or(deadline);
    let run = async {
        let write = async {
            if let Some(mut input) = input {
                // A command that does not read its input is fine; closing it ends the input.
                let _ = input.write_all(&q.payload).await;
            }
        };
        let ((), out) = tokio::join!(write, read_bounded(output));
        (out, child.wait().await)
    };
    let outcome = tokio::time::timeout_at(deadline, run).await;
    let ((out, truncated), status) = match outcome {
        Ok(done) => done,
        Err(_) => {
            kill_group(&mut child).await;
            warn!(
                "query handler {cmd:?} outlived query {:?}'s timeout and was killed: no response",
                q.name
            );
            return None;
        }
    };
    match status {
        Ok(s) if s.success() => debug!("query handler {cmd:?} answered {:?}", q.name),
        Ok(s) => warn!(
            "query handler {cmd:?} failed ({s}) on {:?}; its output is the response",
            q.name
        ),
        Err(err) => warn!("query handler {cmd:?}: {err}"),
    }
    if truncated {
        warn!("query handler {cmd:?} wrote over {MAX_QUERY_RESPONSE} bytes: the response is cut there");
    }
    Some(Bytes::from(out))
}

/// Reads `out` to its end, keeping the first [`MAX_QUERY_RESPONSE`] bytes; true if there was
/// more.
async fn read_bounded(out: Option<ChildStdout>) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut out) = out else {
        return (kept, truncated);
    };
    let mut chunk = [0u8; 4096];
    loop {
        match out.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_QUERY_RESPONSE - kept.len();
                truncated |= n > room;
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    (kept, truncated)
}
