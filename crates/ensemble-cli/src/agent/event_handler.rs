//! `ensemble agent --event-handler CMD`: runs CMD for every event, one at a time and in order,
//! with the event in environment variables and as JSON on stdin.

use std::process::Stdio;
use std::time::Duration;

use ensemble::Node;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tracing::{debug, warn};

use super::settings::SECRET_VARS;
use crate::views::EventView;

/// How long one handler run may take before it is killed.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `commands` for every event of `node` until the node stops.
pub fn spawn(node: &Node, commands: Vec<String>) {
    if commands.is_empty() {
        return;
    }
    let mut stream = EventView::stream(node);
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
