//! `ensemble agent --event-handler CMD`: runs CMD for every event, one at a time and in order,
//! with the event in environment variables and as JSON on stdin.

use std::process::Stdio;
use std::time::Duration;

use ensemble::Node;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{debug, warn};

use crate::events::{self, EventView};

/// How long one handler run may take before it is killed.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `commands` for every event of `node` until the node stops.
pub fn spawn(node: &Node, commands: Vec<String>) {
    if commands.is_empty() {
        return;
    }
    let mut stream = events::stream(node);
    let me = node.name().to_owned();
    tokio::spawn(async move {
        while let Some(e) = stream.next().await {
            for cmd in &commands {
                run(cmd, &me, &e).await;
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
    let json = serde_json::to_string(e).expect("events serialize");
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env(me, e))
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(err) => {
            warn!("event handler {cmd:?} could not start: {err}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that does not read its input is fine.
        let _ = stdin.write_all(json.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
    }
    match tokio::time::timeout(HANDLER_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => warn!("event handler {cmd:?} failed ({status}) on {}", e.kind()),
        Ok(Err(err)) => warn!("event handler {cmd:?}: {err}"),
        Err(_) => {
            let _ = child.kill().await;
            warn!(
                "event handler {cmd:?} ran over {HANDLER_TIMEOUT:?} on {} and was killed",
                e.kind()
            );
        }
    }
    if let EventView::User { name, origin, .. } = e {
        debug!("event handler ran for user event {name} from {origin}");
    }
}
