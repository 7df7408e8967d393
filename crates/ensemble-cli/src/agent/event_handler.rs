//! `ensemble agent --event-handler [FILTER=]CMD`: runs CMD for every event FILTER lets
//! through (Serf's syntax, `event_filter`; no filter: every event), one at a time and in
//! order, with the event in environment variables and as JSON on stdin. The handlers of the
//! config file are read again on SIGHUP.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ensemble::Node;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::settings::{FileSettings, SECRET_VARS};
use crate::event_filter::{parse_handler, EventFilter};
use crate::views::EventView;

/// How long one handler run may take before it is killed.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most event handlers.
pub const MAX_HANDLERS: usize = 64;

/// One `--event-handler`: which events, and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHandler {
    /// The filter as written (`*` when none).
    pub filter_text: String,
    pub filter: EventFilter,
    pub command: String,
}

/// Parses `specs` (`[FILTER=]CMD` each); the error names the handler and where it came from.
pub fn parse_all(specs: &[String], from: &str) -> Result<Vec<EventHandler>> {
    if specs.len() > MAX_HANDLERS {
        anyhow::bail!(
            "{} event handlers ({from}): at most {MAX_HANDLERS}",
            specs.len()
        );
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (filter, command) = parse_handler(spec)
                .map_err(|e| anyhow::anyhow!("event handler {} ({from}): {e}", i + 1))?;
            let filter_text = match spec.strip_suffix(command.as_str()) {
                Some(prefix) if !prefix.is_empty() => prefix.trim_end_matches('=').to_owned(),
                _ => "*".to_owned(),
            };
            Ok(EventHandler {
                filter_text,
                filter,
                command,
            })
        })
        .collect()
}

/// The agent's event handlers, replaced on SIGHUP.
#[derive(Clone)]
pub struct EventHandlers {
    current: Arc<watch::Sender<Arc<Vec<EventHandler>>>>,
    /// Set by `--event-handler` (or `ENSEMBLE_EVENT_HANDLER`), which the config file cannot
    /// override.
    from_flag: bool,
}

impl EventHandlers {
    pub fn new(handlers: Vec<EventHandler>, from_flag: bool) -> EventHandlers {
        EventHandlers {
            current: Arc::new(watch::Sender::new(Arc::new(handlers))),
            from_flag,
        }
    }

    /// SIGHUP: the handlers of the config file `file`, unless the flag set them; logs what
    /// changed (the filters, not the commands).
    pub fn reload(&self, file: &FileSettings) {
        let old = self.current.borrow().clone();
        let names = |hs: &[EventHandler]| {
            let f: Vec<&str> = hs.iter().map(|h| h.filter_text.as_str()).collect();
            format!("{} [{}]", hs.len(), f.join(" "))
        };
        if self.from_flag {
            info!("SIGHUP: the event handlers stay as --event-handler set them");
            return;
        }
        match parse_all(&file.event_handlers, "config key event_handlers") {
            Ok(new) if new == *old => debug!("SIGHUP: the event handlers are unchanged"),
            Ok(new) => {
                info!("SIGHUP: event handlers {} -> {}", names(&old), names(&new));
                self.current.send_replace(Arc::new(new));
            }
            Err(e) => warn!("SIGHUP: kept the event handlers as they were: {e:#}"),
        }
    }
}

/// Runs the handlers of `handlers` for the events of `node` they want, until the node stops.
/// Without a handler and without a config file to add some on SIGHUP, runs nothing.
pub fn spawn(node: &Node, handlers: &EventHandlers, reloadable: bool) {
    if handlers.current.borrow().is_empty() && !reloadable {
        return;
    }
    let mut stream = EventView::stream(node);
    let me = node.name().to_owned();
    let current = handlers.current.subscribe();
    tokio::spawn(async move {
        while let Some(e) = stream.next().await {
            let now = current.borrow().clone();
            for h in now.iter().filter(|h| h.filter.matches(&e)) {
                run(&h.command, &me, &e).await;
            }
        }
    });
}

fn env(me: &str, e: &EventView) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("ENSEMBLE_EVENT", e.kind()),
        ("ENSEMBLE_SELF_NAME", me.to_owned()),
    ];
    match e {
        EventView::User {
            name,
            origin,
            seq,
            ltime,
            ..
        } => {
            vars.push(("ENSEMBLE_USER_EVENT", name.clone()));
            vars.push(("ENSEMBLE_ORIGIN", origin.clone()));
            vars.push(("ENSEMBLE_USER_SEQ", seq.to_string()));
            vars.push(("ENSEMBLE_USER_LTIME", ltime.to_string()));
        }
        EventView::Member { member, .. } => {
            vars.push(("ENSEMBLE_MEMBER", member.name.clone()));
            vars.push(("ENSEMBLE_MEMBER_ADDR", member.addr.clone()));
        }
    }
    vars
}

async fn run(cmd: &str, me: &str, e: &EventView) {
    let mut json = serde_json::to_vec(e).expect("events serialize");
    json.push(b'\n');
    run_command(cmd, env(me, e), &json, &e.kind()).await;
}

/// Starts `sh -c CMD` with `vars` in its environment and none of the agent's secrets, in a
/// process group of its own (so that [`kill_group`] ends a whole pipeline), its stdin piped
/// and its stdout as given; killed if dropped.
pub fn spawn_shell(
    cmd: &str,
    vars: Vec<(&'static str, String)>,
    stdout: Stdio,
) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(vars)
        // Gone from the agent's environment already (`SecretEnv::take`); never passed on.
        .env_remove(SECRET_VARS[0])
        .env_remove(SECRET_VARS[1])
        .env_remove(SECRET_VARS[2])
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Kills (SIGKILL) the process group a [`spawn_shell`] child leads, and the child.
pub async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill().await;
}

/// Runs `sh -c CMD` with `vars` in its environment and `stdin` on its standard input; waits
/// up to a minute (then kills it). Failures are logged with `what`; nothing is returned.
pub async fn run_command(cmd: &str, vars: Vec<(&'static str, String)>, stdin: &[u8], what: &str) {
    let mut child = match spawn_shell(cmd, vars, Stdio::inherit()) {
        Ok(c) => c,
        Err(err) => {
            warn!("handler {cmd:?} could not start: {err}");
            return;
        }
    };
    let input = child.stdin.take();
    let run = async {
        if let Some(mut input) = input {
            // A handler that does not read its input is fine.
            let _ = input.write_all(stdin).await;
        }
        child.wait().await
    };
    let outcome = tokio::time::timeout(HANDLER_TIMEOUT, run).await;
    match outcome {
        Ok(Ok(status)) if status.success() => debug!("handler {cmd:?} ran for {what}"),
        Ok(Ok(status)) => warn!("handler {cmd:?} failed ({status}) on {what}"),
        Ok(Err(err)) => warn!("handler {cmd:?}: {err}"),
        Err(_) => {
            kill_group(&mut child).await;
            warn!("handler {cmd:?} ran over {HANDLER_TIMEOUT:?} on {what} and was killed");
        }
    }
}
