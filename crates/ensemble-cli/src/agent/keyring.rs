//! The agent's keyring file (`--keyring-file`, config key `keyring_file`): the cluster keys as a
//! JSON array of strings, primary first, mode 0600 (Serf's keyring file, in hex). Read at start
//! (created from the cluster secret when missing), written again after every change of the
//! node's keyring (a key operation from any node), and read again on SIGHUP (`reload.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ensemble::{Keyring, Node, Secret};
use tracing::{info, warn};

/// The keyring in `path`, or, if there is no such file, one holding the key `secret` gives,
/// written to `path`.
pub fn load(path: &Path, secret: impl FnOnce() -> Result<Secret>) -> Result<Keyring> {
    if !path.exists() {
        let key = secret()?;
        let ring = Keyring::new(key);
        write(path, &ring)
            .with_context(|| format!("creating the keyring file {}", path.display()))?;
        info!(
            "created the keyring file {} with the cluster secret",
            path.display()
        );
        return Ok(ring);
    }
    read(path)
}

pub(super) fn read(path: &Path) -> Result<Keyring> {
    let context = || format!("the keyring file {} (--keyring-file)", path.display());
    let text = std::fs::read_to_string(path).with_context(context)?;
    let keys: Vec<String> = serde_json::from_str(&text)
        .with_context(|| format!("{}: a JSON array of keys, primary first", context()))?;
    let mut keys = keys.into_iter().enumerate().map(|(i, k)| {
        Secret::new(k.trim().as_bytes().to_vec())
            .with_context(|| format!("{}: key {}", context(), i + 1))
    });
    let Some(primary) = keys.next() else {
        bail!("{} holds no key", context());
    };
    let others: Vec<Secret> = keys.collect::<Result<_>>()?;
    Keyring::with(primary?, others).with_context(context)
}

/// Writes `ring` to `path` whole (a new file renamed over the old one), readable by its owner
/// only.
fn write(path: &Path, ring: &Keyring) -> Result<()> {
    let keys: Vec<String> = ring
        .keys()
        .iter()
        .map(|k| String::from_utf8_lossy(k.expose()).into_owned())
        .collect();
    let text = serde_json::to_string_pretty(&keys)?;
    let tmp = path.with_extension("new");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = private(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(unix)]
fn private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Keeps `path` up to date with the node's keyring (SIGHUP reads it again: `reload`).
pub fn spawn(node: &Node, path: PathBuf) {
    let mut changes = node.keyring_changes();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let ring = changes.borrow_and_update().clone();
            if let Err(e) = write(&path, &ring) {
                warn!("could not write the keyring file {}: {e:#}", path.display());
            }
        }
    });
}
