//! The agent's tags file (`--tags-file`, like Serf's `-tags-file`): the node's tags as a JSON
//! object of strings, read at start and rewritten whole (a new file renamed over the old one)
//! after every change through the API, so the tags survive a restart.
//!
//! Imports nothing of the agent, its server or the client commands: the agent reads the file,
//! the tags routes write it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Largest tags file read, in bytes: far above what the tag limits let a node carry.
pub const MAX_TAGS_FILE: u64 = 64 * 1024;

/// Tags of Ensemble's own start with this (the role, reserved slots, the discovery phase):
/// users can neither set nor remove them.
pub const OWN_PREFIX: &str = "ensemble.";

/// A node's tags split into Ensemble's own (`ensemble.*`, kept by every change a user makes)
/// and the user's. The role and reserve tags are left out of both: `Node::set_tags` keeps them
/// by itself.
pub fn split(
    all: &BTreeMap<String, String>,
    kept_by_node: &[&str],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    all.iter()
        .filter(|(k, _)| !kept_by_node.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with(OWN_PREFIX))
}

/// What changed from `old` to `new`, for a log line: `+k=v`, `~k=v`, `-k`.
pub fn describe_change(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => parts.push(format!("+{k}={v}")),
            Some(o) if o != v => parts.push(format!("~{k}={v}")),
            Some(_) => {}
        }
    }
    parts.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| format!("-{k}")),
    );
    parts.join(" ")
}

/// The tags in `path`, or None if there is no such file.
pub fn read(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    let context = || format!("the tags file {} (--tags-file)", path.display());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(context),
    };
    let mut text = String::new();
    file.take(MAX_TAGS_FILE + 1)
        .read_to_string(&mut text)
        .with_context(context)?;
    if text.len() as u64 > MAX_TAGS_FILE {
        bail!("{} is over {MAX_TAGS_FILE} bytes", context());
    }
    let tags = serde_json::from_str(&text)
        .with_context(|| format!("{}: a JSON object of strings", context()))?;
    Ok(Some(tags))
}

/// Writes `tags` to `path` whole: a file beside it, synced, then renamed over it.
pub fn write(path: &Path, tags: &BTreeMap<String, String>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("the tags file has no file name")?;
    let aside = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&aside)?;
        let mut text = serde_json::to_string_pretty(tags).expect("tags serialize");
        text.push('\n');
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&aside, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.with_context(|| format!("cannot write the tags file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.json");
        assert!(read(&path).unwrap().is_none());
        let tags = BTreeMap::from([("role".to_string(), "web".to_string())]);
        write(&path, &tags).unwrap();
        assert_eq!(read(&path).unwrap(), Some(tags));
        std::fs::write(&path, "[1, 2]").unwrap();
        let e = read(&path).unwrap_err();
        assert!(format!("{e:#}").contains("JSON object of strings"), "{e:#}");
        std::fs::write(&path, vec![b' '; MAX_TAGS_FILE as usize + 1]).unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("over"));
    }

    #[test]
    fn split_keeps_ensembles_own_apart_and_changes_are_described() {
        let t = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let all = t(&[
            ("ensemble.role", "server"),
            ("ensemble.phase", "joined"),
            ("dc", "a"),
        ]);
        let (own, user) = split(&all, &["ensemble.role"]);
        assert_eq!(own, t(&[("ensemble.phase", "joined")]));
        assert_eq!(user, t(&[("dc", "a")]));
        let change = describe_change(
            &t(&[("dc", "a"), ("x", "1")]),
            &t(&[("dc", "b"), ("y", "2")]),
        );
        assert_eq!(change, "~dc=b +y=2 -x");
    }
}
