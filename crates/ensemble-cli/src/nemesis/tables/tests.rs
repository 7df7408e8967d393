//! The table checkers on crafted histories: each passes on a history that keeps its promise
//! and fails on one that breaks it.

use std::collections::BTreeMap;

use serde_json::json;

use super::check::{acknowledged_writes_survive, reads_valid, replicas_agree, Final};
use super::ops;
use super::order::{insert_new_unique, serial_one_order};
use crate::nemesis::history::{Op, Outcome};
use crate::nemesis::workload::Lives;

fn op(kind: &str, agent: &str, at: u64, outcome: Outcome, detail: serde_json::Value) -> Op {
    Op {
        kind: kind.into(),
        agent: agent.into(),
        invoked_ms: at,
        completed_ms: at + 5,
        outcome,
        detail,
    }
}

fn insert(agent: &str, at: u64, key: &str, value: &str) -> Op {
    op(
        ops::INSERT,
        agent,
        at,
        Outcome::Ok,
        json!({"key": key, "value": value}),
    )
}

fn read(agent: &str, at: u64, key: &str, value: Option<&str>) -> Op {
    op(
        ops::READ,
        agent,
        at,
        Outcome::Ok,
        json!({"key": key, "value": value}),
    )
}

fn grant(agent: &str, at: u64, key: &str, value: &str, inserted: bool, held: &str) -> Op {
    let d = json!({"key": key, "value": value, "inserted": inserted, "held": held});
    op(ops::IF_ABSENT, agent, at, Outcome::Ok, d)
}

/// Every agent holding `records`, with the same digest.
fn everywhere(records: &[(&str, &str)]) -> Final {
    let records: BTreeMap<String, String> = records
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut f = Final::default();
    for a in ["a0", "a1"] {
        f.digests.insert(a.into(), Some("00ff".into()));
        f.records.insert(a.into(), Some(records.clone()));
    }
    f
}

/// Agent `name` ran from 0 ms and was killed at `at` ms, then restarted at once.
fn killed(name: &str, at: u64) -> Lives {
    Lives::from([(name.to_string(), vec![(0, Some(at)), (at + 1, None)])])
}

#[test]
fn replicas_agree_only_with_equal_digests_and_records_from_everyone() {
    let f = everywhere(&[("k", "v")]);
    assert!(replicas_agree(&f).passed);
    let mut other = f.clone();
    other.digests.insert("a1".into(), Some("0001".into()));
    assert!(!replicas_agree(&other).passed);
    let mut missing = f.clone();
    missing.records.insert("a1".into(), Some(BTreeMap::new()));
    let v = replicas_agree(&missing);
    assert!(!v.passed && v.violations[0].contains("\"k\""), "{v:?}");
    let mut silent = f;
    silent.digests.insert("a1".into(), None);
    assert!(!replicas_agree(&silent).passed);
}

#[test]
fn an_acknowledged_insert_survives_unless_deleted_or_its_writer_was_killed() {
    let h = vec![insert("a0", 10, "u-1", "0-1")];
    let none = Lives::new();
    assert!(acknowledged_writes_survive(&h, &everywhere(&[("u-1", "0-1")]), &none).passed);
    let v = acknowledged_writes_survive(&h, &everywhere(&[]), &none);
    assert!(!v.passed && v.violations[0].contains("missing"), "{v:?}");
    // Its writer killed afterwards: what it alone held may be gone.
    assert!(acknowledged_writes_survive(&h, &everywhere(&[]), &killed("a0", 50)).passed);
    // Killed before the write: no excuse.
    assert!(!acknowledged_writes_survive(&h, &everywhere(&[]), &killed("a0", 5)).passed);
    // A delete that may have happened (even unknown) explains the absence.
    let mut deleted = h.clone();
    deleted.push(op(
        ops::DELETE,
        "a1",
        20,
        Outcome::Unknown("timeout".into()),
        json!({"key": "u-1"}),
    ));
    assert!(acknowledged_writes_survive(&deleted, &everywhere(&[]), &none).passed);
    // A failed delete does not.
    deleted[1].outcome = Outcome::Fail("400".into());
    assert!(!acknowledged_writes_survive(&deleted, &everywhere(&[]), &none).passed);
}

#[test]
fn a_final_value_must_come_from_an_insert_that_may_have_happened() {
    let mut h = vec![
        insert("a0", 10, "c-0", "0-1"),
        insert("a1", 11, "c-0", "1-1"),
    ];
    let none = Lives::new();
    assert!(acknowledged_writes_survive(&h, &everywhere(&[("c-0", "1-1")]), &none).passed);
    let v = acknowledged_writes_survive(&h, &everywhere(&[("c-0", "9-9")]), &none);
    assert!(!v.passed && v.violations[0].contains("no insert"), "{v:?}");
    // An unknown insert may have written its value; a failed one may not.
    for (kind, at, outcome, value) in [
        (ops::INSERT, 12, Outcome::Unknown("timeout".into()), "1-2"),
        (ops::SERIAL, 13, Outcome::Fail("400".into()), "1-3"),
    ] {
        h.push(op(
            kind,
            "a1",
            at,
            outcome,
            json!({"key": "c-0", "value": value}),
        ));
    }
    assert!(acknowledged_writes_survive(&h, &everywhere(&[("c-0", "1-2")]), &none).passed);
    assert!(!acknowledged_writes_survive(&h, &everywhere(&[("c-0", "1-3")]), &none).passed);
}

#[test]
fn a_key_granted_twice_is_a_violation_unless_its_grantor_was_killed_or_cut_off_between() {
    use crate::nemesis::record::{Applied, FaultRecord};
    let calm = FaultRecord::default();
    let h = vec![
        grant("a0", 10, "l-0", "0-1", true, "0-1"),
        grant("a1", 20, "l-0", "1-1", false, "0-1"),
    ];
    assert!(insert_new_unique(&h, &Lives::new(), &calm).passed);
    let twice = vec![h[0].clone(), grant("a1", 30, "l-0", "1-2", true, "1-2")];
    let v = insert_new_unique(&twice, &Lives::new(), &calm);
    assert!(
        !v.passed && v.violations[0].contains("granted twice"),
        "{v:?}"
    );
    assert!(insert_new_unique(&twice, &killed("a0", 25), &calm).passed);
    // A grant whose first answer was lost answers `inserted: false` with its own value held:
    // it is a grant all the same.
    let retried = vec![h[0].clone(), grant("a1", 30, "l-0", "1-2", false, "1-2")];
    assert!(!insert_new_unique(&retried, &Lives::new(), &calm).passed);
    // Each side of a split has its own leader: a0 and a1 cut from each other between the two.
    let split = FaultRecord {
        applied: vec![Applied {
            kind: "majority-split",
            targets: vec!["a0".into()],
            start_ms: 5,
            end_ms: Some(40),
            cuts: vec![("a0".into(), "a1".into())],
            ..Applied::default()
        }],
    };
    let v = insert_new_unique(&twice, &Lives::new(), &split);
    assert!(v.passed, "{v:?}");
    assert_eq!(v.counts["granted_on_both_sides_of_a_split"], 1);
}

#[test]
fn a_retried_insert_if_absent_that_finds_its_own_value_wrote_it() {
    let h = vec![
        grant("a0", 10, "l-0", "0-1", false, "0-1"),
        op(
            ops::READ,
            "a1",
            20,
            Outcome::Ok,
            json!({"key": "l-0", "value": "0-1"}),
        ),
    ];
    assert!(reads_valid(&h).passed);
    let none = Lives::new();
    assert!(acknowledged_writes_survive(&h, &everywhere(&[("l-0", "0-1")]), &none).passed);
    let other = vec![grant("a0", 10, "l-0", "0-1", false, "9-9")];
    assert!(!reads_valid(&other).passed);
}

#[test]
fn serial_values_seen_in_opposite_orders_are_a_violation() {
    let none = Lives::new();
    let serial = |at, v: &str| {
        op(
            ops::SERIAL,
            "a0",
            at,
            Outcome::Ok,
            json!({"key": "s-0", "value": v}),
        )
    };
    // Serial writes of x then y, and each agent's reads of s-0 10 ms apart.
    let seen = |reads: &[(&str, &[&str])]| {
        let mut h = vec![serial(1, "x"), serial(2, "y")];
        for (agent, values) in reads {
            for (i, v) in values.iter().enumerate() {
                h.push(read(agent, 10 * (i as u64 + 1), "s-0", Some(v)));
            }
        }
        h
    };
    let v = serial_one_order(&seen(&[("a0", &["x", "y"]), ("a1", &["x", "y"])]), &none);
    assert!(v.passed, "{v:?}");
    let opposite = seen(&[("a0", &["x", "y"]), ("a1", &["y", "x"])]);
    assert!(!serial_one_order(&opposite, &none).passed);
    // One agent seeing x again after y.
    let back = seen(&[("a0", &["x", "y", "x"])]);
    assert!(!serial_one_order(&back, &none).passed);
    // ... unless it was restarted in between (a new process starts empty and catches up).
    assert!(serial_one_order(&back, &killed("a0", 26)).passed);
    // Overlapping reads order nothing; keys with plain inserts are not serial keys.
    let mut plain = back.clone();
    plain.push(insert("a0", 3, "s-0", "z"));
    assert!(serial_one_order(&plain, &none).passed);
}

#[test]
fn reads_must_return_values_written_before_they_completed() {
    let mut h = vec![insert("a0", 10, "k", "v1"), read("a1", 20, "k", Some("v1"))];
    h.push(read("a1", 21, "k", None));
    assert!(reads_valid(&h).passed);
    let never = vec![h[0].clone(), read("a1", 20, "k", Some("v9"))];
    assert!(!reads_valid(&never).passed);
    // A read that completed before the write of its value was invoked.
    let early = vec![read("a1", 1, "k", Some("v1")), h[0].clone()];
    assert!(!reads_valid(&early).passed);
    // The value an insert if absent found held counts as a read.
    let held = vec![grant("a1", 20, "l-0", "1-1", false, "0-7")];
    let v = reads_valid(&held);
    assert!(!v.passed, "{v:?}");
}
