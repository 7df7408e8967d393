//! The seed corpus of the fuzz targets (fuzz/seeds/TARGET/NAME, docs/FUZZING.md): valid
//! inputs of every kind, made from the wire format as it is.
//!
//! `scripts/fuzz --corpus` runs `write_seeds` with ENSEMBLE_WRITE_SEEDS set to the folder to
//! write them to (each target's folder is emptied first); without it the test only checks
//! that every seed is accepted as valid input by its check.

use std::collections::BTreeMap;

use ensemble::fuzzing::{self as runtime, Case};
use ensemble::{NodeRow, NodeStatus};
use ensemble_proto::fuzzing::{self as proto, seeds};
use ensemble_proto::wire;

/// Every target's seeds: target -> (name, bytes).
fn corpus() -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let frames: Vec<(String, Vec<u8>)> = seeds::frames()
        .into_iter()
        .map(|(name, f)| (name, wire::encode(&f)))
        .collect();
    let tables = frames
        .iter()
        .filter(|(name, _)| name.starts_with("table."))
        .cloned()
        .collect();
    let mut session = Vec::new();
    for (name, bytes) in &frames {
        let small = ["heartbeat", "table.ops", "handshake-0", "payload"];
        let cases: &[Case] = if small.contains(&name.as_str()) {
            &Case::ALL
        } else {
            &[Case::Genuine]
        };
        for case in cases {
            let input = match case {
                Case::Forged => runtime::session_input(*case, 0, &runtime::sealed_first(bytes)),
                _ => runtime::session_input(*case, 3, bytes),
            };
            session.push((format!("{case:?}-{name}").to_lowercase(), input));
        }
    }
    let row = NodeRow {
        module: ensemble::TRACKER_TABLE.into(),
        node: "n1".into(),
        status: NodeStatus::Offline,
        last_change_ms: 1_700_000_000_000,
        incarnation: 3,
    };
    let tracker = vec![
        ("row".to_string(), postcard::to_stdvec(&row).unwrap()),
        ("key".to_string(), postcard::to_stdvec("n1").unwrap()),
    ];
    let file = b"# the cluster\n127.0.0.1:7946 node2.example:7946\n\n  [::1]:7000\t# x\n".to_vec();
    BTreeMap::from([
        ("wire_frame", frames),
        ("table_records", tables),
        ("stack_messages", seeds::stack_sequences()),
        ("user_events", seeds::event_sequences()),
        ("session_open", session),
        ("tracker_row", tracker),
        ("discovery_file", vec![("hosts".to_string(), file)]),
    ])
}

#[test]
fn write_seeds() {
    let corpus = corpus();
    for (target, seeds) in &corpus {
        for (name, bytes) in seeds {
            match *target {
                "wire_frame" => assert!(proto::frame(bytes).is_some(), "{name}"),
                "table_records" => proto::table_frame(bytes),
                "stack_messages" => proto::stack(bytes),
                "user_events" => proto::user_events(bytes),
                "session_open" => runtime::session(bytes),
                "tracker_row" => runtime::tracker_row(bytes),
                "discovery_file" => runtime::discovery_file(bytes),
                other => panic!("no check for {other}"),
            }
        }
    }
    let Some(dir) = std::env::var_os("ENSEMBLE_WRITE_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut total = (0, 0);
    for (target, seeds) in corpus {
        let folder = dir.join(target);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(folder.join(name), &bytes).unwrap();
            total = (total.0 + 1, total.1 + bytes.len());
        }
    }
    eprintln!(
        "wrote {} seeds, {} bytes, to {}",
        total.0,
        total.1,
        dir.display()
    );
}
