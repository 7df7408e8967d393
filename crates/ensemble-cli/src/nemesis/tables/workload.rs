//! The `tables` workload's clients: threads calling random agents with sync inserts of unique
//! keys, inserts of a few hot keys, inserts if absent of hot lock keys, serial inserts,
//! deletes and reads; and at the end, the replicas' digests and records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::json;

use crate::commands::table::all_records;
use crate::nemesis::calls::{call, is_status, rng};
use crate::nemesis::history::{Op, Verdict};
use crate::nemesis::workload::{Ctx, End, Endpoint, Workload};
use crate::views::{InfoView, PutBody, PutView, RecordView};

use super::check::{self, Final};
use super::ops;
use super::order;

/// The table every agent declares.
pub const TABLE: &str = "nemesis";
/// How many hot keys the inserts, serial inserts and deletes share.
const HOT: u64 = 4;
/// How many lock keys are open to inserts if absent at a time (a new set every 2 s).
const LOCKS: u64 = 4;
/// How long the replicas get to agree at the end (re-merges after a heal take seconds).
const CONVERGE: Duration = Duration::from_secs(20);

/// The `tables` workload: `clients` threads.
pub struct Tables {
    pub clients: u64,
}

impl Default for Tables {
    fn default() -> Tables {
        Tables { clients: 4 }
    }
}

fn record_path(key: &str) -> String {
    format!("/v1/tables/{TABLE}/records/{key}")
}

/// One put of `value` under `key`, recorded as `kind`.
fn put(ctx: &Ctx, e: &Endpoint, kind: &str, key: &str, value: &str) {
    let body = PutBody {
        value: value.to_string(),
        if_absent: kind == ops::IF_ABSENT,
        serial: kind == ops::SERIAL,
    };
    let _ = call(
        ctx,
        kind,
        e,
        json!({"key": key, "value": value}),
        |c| c.put::<PutView>(&record_path(key), &body),
        |a, d| {
            if let (Some(inserted), Some(held)) = (a.inserted, &a.value) {
                d["inserted"] = json!(inserted);
                d["held"] = json!(held);
            }
        },
    );
}

/// One client: random operations on random agents until the end.
fn client(ctx: &Ctx, id: u64) {
    let mut rng: SmallRng = rng(ctx, id);
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0u64;
    while ctx.clock.now_ms() < ctx.until_ms {
        let all = ctx.endpoints.all();
        if all.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let e = &all[rng.gen_range(0..all.len())];
        n += 1;
        let value = format!("{id}-{n}");
        let hot = format!("c-{}", rng.gen_range(0..HOT));
        match rng.gen_range(0..100) {
            0..25 => {
                let key = format!("u-{id}-{n}");
                put(ctx, e, ops::INSERT, &key, &value);
                mine.push(key);
            }
            25..43 => put(ctx, e, ops::INSERT, &hot, &value),
            43..53 => {
                let round = ctx.clock.now_ms() / 2000;
                let key = format!("l-{round}-{}", rng.gen_range(0..LOCKS));
                put(ctx, e, ops::IF_ABSENT, &key, &value);
            }
            53..63 => {
                let key = format!("s-{}", rng.gen_range(0..HOT));
                put(ctx, e, ops::SERIAL, &key, &value);
            }
            63..73 => {
                let key = match mine.len() {
                    0 => hot,
                    len if rng.gen_bool(0.5) => mine.swap_remove(rng.gen_range(0..len)),
                    _ => hot,
                };
                let _ = call(
                    ctx,
                    ops::DELETE,
                    e,
                    json!({ "key": key }),
                    |c| c.delete::<serde::de::IgnoredAny>(&record_path(&key)),
                    |_, _| {},
                );
            }
            _ => {
                let key = match rng.gen_range(0..3) {
                    0 => hot,
                    1 => format!("s-{}", rng.gen_range(0..HOT)),
                    _ if !mine.is_empty() => mine[rng.gen_range(0..mine.len())].clone(),
                    _ => format!("l-{}-0", ctx.clock.now_ms() / 2000),
                };
                read(ctx, e, &key);
            }
        }
    }
}

/// One read of `key` (no record is an answer too: `value` null).
fn read(ctx: &Ctx, e: &Endpoint, key: &str) {
    let _ = call(
        ctx,
        ops::READ,
        e,
        json!({ "key": key }),
        |c| match c.get::<RecordView>(&record_path(key)) {
            Ok(r) => Ok(Some(r.value)),
            Err(err) if is_status(&err, 404) && is_key_not_found(&err) => Ok(None),
            Err(err) => Err(err),
        },
        |v, d| d["value"] = json!(v),
    );
}

fn is_key_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::client::AgentError>()
        .is_some_and(|a| a.code() == "key_not_found")
}

/// The agents' digests and records, read again until the digests agree or [`CONVERGE`]
/// passed.
pub fn final_state(end: &End) -> Final {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut f = Final::default();
        for e in end.endpoints.all() {
            let info = end
                .client(&e)
                .and_then(|c| c.get::<InfoView>(&format!("/v1/tables/{TABLE}")));
            f.digests
                .insert(e.name.clone(), info.ok().map(|i| i.digest));
        }
        let distinct: std::collections::BTreeSet<_> = f.digests.values().collect();
        if distinct.len() == 1 && !distinct.contains(&None) || Instant::now() >= deadline {
            for e in end.endpoints.all() {
                let records = end
                    .client(&e)
                    .and_then(|c| all_records(&c, &format!("/v1/tables/{TABLE}/records")));
                let records = records.ok().map(|rs| {
                    rs.into_iter()
                        .map(|r| (r.key, r.value))
                        .collect::<BTreeMap<_, _>>()
                });
                f.records.insert(e.name.clone(), records);
            }
            return f;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Workload for Tables {
    fn name(&self) -> &'static str {
        "tables"
    }

    fn agent_args(&self, _name: &str, _dir: &std::path::Path) -> Vec<String> {
        vec!["--table".into(), TABLE.into()]
    }

    fn run(&self, ctx: Ctx) {
        std::thread::scope(|s| {
            for id in 0..self.clients {
                let ctx = &ctx;
                s.spawn(move || client(ctx, id));
            }
        });
    }

    fn check(&self, ops: &[Op], end: &End) -> Vec<Verdict> {
        let f = final_state(end);
        vec![
            check::replicas_agree(&f),
            check::acknowledged_writes_survive(ops, &f, &end.lives),
            order::insert_new_unique(ops, &end.lives, &end.faults),
            order::serial_one_order(ops, &end.lives),
            check::reads_valid(ops),
        ]
    }
}
