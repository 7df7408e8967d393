//! The workspace's crates as published: a `rust-version` that the locked dependencies allow,
//! and the metadata crates.io needs. (`cargo package --workspace --no-verify` itself runs in
//! .ci/run.)

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `cargo metadata` of the workspace, with every platform's locked dependencies.
fn metadata() -> Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// "1.89" or "1.89.0" as (1, 89, 0).
fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
    let major = parts.next().unwrap();
    (major, parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The workspace's own packages, and the locked dependencies.
fn ours_and_theirs(meta: &Value) -> (Vec<&Value>, Vec<&Value>) {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let (ours, theirs): (Vec<&Value>, Vec<&Value>) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|p| members.contains(&p["id"].as_str().unwrap()));
    assert_eq!(ours.len(), 4, "the four crates of the workspace");
    (ours, theirs)
}

#[test]
fn rust_version_covers_the_locked_dependencies() {
    let meta = metadata();
    let (ours, theirs) = ours_and_theirs(&meta);
    let declared = ours[0]["rust_version"]
        .as_str()
        .expect("the crates declare a rust-version");
    for p in &ours {
        assert_eq!(
            p["rust_version"], declared,
            "{} inherits the workspace's rust-version",
            p["name"]
        );
    }
    let newest = theirs
        .iter()
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p)))
        .max_by_key(|(v, _)| *v)
        .unwrap();
    assert!(
        newest.0 <= version(declared),
        "{} {} needs Rust {}, newer than the workspace's rust-version {declared} \
         (raise it in Cargo.toml, or hold the dependency back)",
        newest.1["name"],
        newest.1["version"],
        newest.1["rust_version"]
    );
}

#[test]
fn every_crate_carries_the_metadata_crates_io_shows() {
    let meta = metadata();
    for p in ours_and_theirs(&meta).0 {
        let name = p["name"].as_str().unwrap();
        assert_eq!(p["license"], "MIT OR Apache-2.0", "{name}");
        for field in ["description", "readme", "documentation"] {
            assert!(p[field].is_string(), "{name} has no {field}");
        }
        for field in ["keywords", "categories"] {
            assert!(
                !p[field].as_array().unwrap().is_empty(),
                "{name} has no {field}"
            );
        }
        let dir = Path::new(p["manifest_path"].as_str().unwrap())
            .parent()
            .unwrap();
        for file in ["LICENSE-APACHE", "LICENSE-MIT"] {
            assert!(dir.join(file).is_file(), "{name} ships no {file}");
        }
        // Every target (library, binaries, examples, tests, benches) lives in the crate's own
        // directory, or `cargo package` leaves it out of the published crate.
        for target in p["targets"].as_array().unwrap() {
            let src = std::fs::canonicalize(target["src_path"].as_str().unwrap()).unwrap();
            assert!(
                src.starts_with(std::fs::canonicalize(dir).unwrap()),
                "{name}: target {} is outside the crate ({})",
                target["name"],
                src.display()
            );
        }
        // A path dependency on a sibling names its version, or the package cannot be published.
        for dep in p["dependencies"].as_array().unwrap() {
            if dep["path"].is_string() && dep["kind"].is_null() {
                assert_ne!(dep["req"], "*", "{name} -> {}: no version", dep["name"]);
            }
        }
    }
}
