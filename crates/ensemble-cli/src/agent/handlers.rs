//! `ensemble agent --handler NAME=COMMAND`: a command run for each named message sent to NAME.

use anyhow::{Context, Result};
use ensemble::Node;
use futures::StreamExt;
use tracing::warn;

use super::event_handler::run_command;

/// Parses `NAME=COMMAND`.
pub fn parse_handler(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, c)) if !n.is_empty() && !c.is_empty() => Ok((n.to_owned(), c.to_owned())),
        _ => Err(format!("expected NAME=COMMAND, got {s:?}")),
    }
}

/// Registers each handler name and runs its command per message, in order, with the payload
/// on stdin and ENSEMBLE_FROM / ENSEMBLE_HANDLER in the environment.
pub async fn spawn(node: &Node, handlers: Vec<(String, String)>) -> Result<()> {
    for (name, cmd) in handlers {
        let mut mailbox = node
            .register(&name)
            .await
            .with_context(|| format!("cannot register handler {name:?} (--handler)"))?;
        tokio::spawn(async move {
            while let Some(e) = mailbox.next().await {
                let vars = vec![
                    ("ENSEMBLE_FROM", e.from.clone()),
                    ("ENSEMBLE_HANDLER", e.name.clone()),
                ];
                let what = format!("a message from {} to {}", e.from, e.name);
                run_command(&cmd, vars, &e.payload, &what).await;
            }
            warn!("handler {name:?} stopped: the node is gone");
        });
    }
    Ok(())
}
