//! SIGHUP: what an agent reads again without a restart, logging what changed: the keyring file
//! (`--keyring-file`), the tags file (`--tags-file`), and from the config file the log level
//! (`log_level`), the event handlers (`event_handlers`) and the query handlers
//! (`[query_handlers]`). Other settings need a restart.
//!
//! The handler is always installed, so a SIGHUP (`systemctl reload`, `kill -HUP`) never
//! terminates the agent, even when there is nothing to read again.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ensemble::proto::topology::{RESERVE_TAG, ROLE_TAG};
use ensemble::Node;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use super::event_handler::EventHandlers;
use super::keyring;
use super::logging::Logging;
use super::query_handler::QueryHandlers;
use super::settings::FileSettings;
use crate::http::AgentControl;
use crate::tags_file::{self, describe_change, split, OWN_PREFIX};

/// What SIGHUP reads again.
pub struct Reloadable {
    /// `--keyring-file`.
    pub keyring_file: Option<PathBuf>,
    /// `--config`: the log level and the event handlers.
    pub config: Option<PathBuf>,
    pub logging: Logging,
    pub event_handlers: EventHandlers,
    pub query_handlers: QueryHandlers,
}

/// Reads the keyring, tags and config files again on every SIGHUP.
pub fn spawn(node: &Node, what: Reloadable, control: &AgentControl) -> Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let (node, control) = (node.clone(), control.clone());
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Some(path) = &what.config {
                match FileSettings::load(path) {
                    Ok(file) => {
                        what.logging.reload(&file);
                        what.event_handlers.reload(&file);
                        what.query_handlers.reload(&file).await;
                    }
                    Err(e) => warn!(
                        "SIGHUP: kept the log level and the event and query handlers as they were: {e:#}"
                    ),
                }
            }
            if let Some(path) = &what.keyring_file {
                reload_keyring(&node, path);
            }
            if let Some(path) = &control.tags_file {
                let _one_at_a_time = control.tags_lock.lock().await;
                reload_tags(&node, path).await;
            }
            if what.keyring_file.is_none() && control.tags_file.is_none() && what.config.is_none() {
                info!(
                    "SIGHUP: nothing to read again (no --keyring-file, no --tags-file, no --config)"
                );
            }
        }
    });
    Ok(())
}

fn reload_keyring(node: &Node, path: &Path) {
    match keyring::read(path) {
        Ok(ring) => {
            let keys = ring.keys().len();
            info!(
                "SIGHUP: read the keyring file {} again ({keys} keys)",
                path.display()
            );
            node.set_keyring(ring);
        }
        Err(e) => warn!("SIGHUP: kept the keyring as it was: {e:#}"),
    }
}

/// Sets the node's tags to the file's (Ensemble's own tags kept), if they differ.
async fn reload_tags(node: &Node, path: &Path) {
    let wanted = match tags_file::read(path) {
        Ok(Some(tags)) => tags,
        Ok(None) => {
            warn!(
                "SIGHUP: kept the tags as they were: {} is missing",
                path.display()
            );
            return;
        }
        Err(e) => {
            warn!("SIGHUP: kept the tags as they were: {e:#}");
            return;
        }
    };
    if let Some(k) = wanted.keys().find(|k| k.starts_with(OWN_PREFIX)) {
        warn!(
            "SIGHUP: kept the tags as they were: {k:?} in {} is one of Ensemble's own tags",
            path.display()
        );
        return;
    }
    let all = node.local_member().tags.as_map().clone();
    let (own, current) = split(&all, &[ROLE_TAG, RESERVE_TAG]);
    if current == wanted {
        info!("SIGHUP: the tags file {} is unchanged", path.display());
        return;
    }
    let change = describe_change(&current, &wanted);
    let mut next = own;
    next.extend(wanted);
    match node.set_tags(next).await {
        Ok(()) => info!("SIGHUP: tags from {}: {change}", path.display()),
        Err(e) => warn!("SIGHUP: kept the tags as they were: {e}"),
    }
}
