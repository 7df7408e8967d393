//! `ensemble bench tables`: a replicated table with three replicas on 127.0.0.1. The caller
//! uses the library inside this process; the two other replicas are `ensemble agent`
//! processes (as the CETS figures had the caller inside one of three Erlang nodes).
//!
//! Measures synchronous inserts from one caller and from many, `insert_many` batches, and the
//! time an empty node takes to hold a complete replica after it connects; then checks that
//! every replica holds exactly the records written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ensemble::{Config, Node, Secret, Table, TableOptions};
use rand::RngCore;
use serde::Serialize;

use crate::client::ApiClient;
use crate::commands::table::all_records;
use crate::procs::{free_port, Proc};
use crate::token::{Token, TOKEN_ENV};
use crate::views::RecordView;

#[derive(Args, Debug)]
pub struct TablesBench {
    /// Synchronous inserts from one caller.
    #[arg(long, default_value_t = 10_000)]
    sync: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 100)]
    callers: usize,
    /// Synchronous inserts spread over the concurrent callers.
    #[arg(long, default_value_t = 50_000)]
    concurrent: usize,
    /// Records per insert_many batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// insert_many batches.
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Records in the table an empty node joins.
    #[arg(long, default_value_t = 100_000)]
    join_records: usize,
    /// Directory for the agents' logs, kept (default: a temporary one, removed after a
    /// successful run and kept after a failed one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Figures of a tables bench.
#[derive(Debug, Serialize)]
pub struct TablesReport {
    pub replicas: usize,
    pub sync_inserts_per_s: f64,
    pub callers: usize,
    pub concurrent_inserts_per_s: f64,
    pub batch: usize,
    pub insert_many_records_per_s: f64,
    pub join_records: usize,
    pub join_ms: f64,
    /// Records every replica holds at the end (all equal, or the bench fails).
    pub records_verified: usize,
}

/// CETS 0.3 on Erlang/OTP 25, 3 nodes, medians of 9 runs on this kind of machine (the issue's
/// figures; not measured in the same run).
const CETS: [(&str, f64); 4] = [
    ("sync inserts/s", 8_100.0),
    ("concurrent inserts/s", 31_000.0),
    ("insert_many records/s", 520_000.0),
    ("join ms", 63.0),
];

pub fn run(a: TablesBench) -> Result<()> {
    if a.sync == 0 || a.callers == 0 || a.concurrent < a.callers || a.batch == 0 || a.batches == 0 {
        bail!(
            "--sync, --batch and --batches must be at least 1, and --concurrent at least --callers"
        );
    }
    let rt = crate::procs::runtime()?;
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ensemble-bench-tables-{}", std::process::id()))
    });
    let r = rt
        .block_on(bench(&a, &dir))
        .with_context(|| format!("agent logs in {}", dir.display()))?;
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let ours = [
        r.sync_inserts_per_s,
        r.concurrent_inserts_per_s,
        r.insert_many_records_per_s,
        r.join_ms,
    ];
    println!(
        "Replicated table, {} replicas on 127.0.0.1 (caller in this process, 2 agents)\n",
        r.replicas
    );
    println!(
        "  {:<40} {:>12} {:>12} {:>8}",
        "", "Ensemble", "CETS*", "ratio"
    );
    for ((what, cets), ours) in CETS.iter().zip(ours) {
        let label = match *what {
            "concurrent inserts/s" => format!("{what} ({} callers)", r.callers),
            "insert_many records/s" => format!("{what} (batches of {})", r.batch),
            "join ms" => format!("join ms (empty node, {} records)", r.join_records),
            w => w.to_string(),
        };
        println!(
            "  {label:<40} {ours:>12.0} {cets:>12.0} {:>8.2}",
            ours / cets
        );
    }
    println!(
        "\n  every replica holds the {} records written (none lost or duplicated)\n  * CETS 0.3 / OTP 25 figures quoted in the issue, not measured in this run",
        r.records_verified
    );
    Ok(())
}

fn node_config(name: &str, secret: &Secret, seeds: Vec<std::net::SocketAddr>) -> Config {
    let mut c = Config::new(
        name,
        "127.0.0.1:0".parse().expect("an address"),
        secret.clone(),
    );
    c.seeds = seeds;
    c
}

async fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Result<Duration> {
    let t = Instant::now();
    while !f().await {
        if t.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(t.elapsed())
}

async fn bench(a: &TablesBench, dir: &Path) -> Result<TablesReport> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex_secret = hex::encode(raw);
    let token = Token::generate();
    let secret = Secret::new(hex_secret.clone())?;
    let caller = Node::start(node_config("bench-0", &secret, vec![])).await?;
    let mut agents = Vec::new();
    for i in 1..3 {
        let name = format!("bench-{i}");
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args([
            "agent", "--name", &name, "--table", "bench", "--table", "join",
        ])
        .args(["--bind", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--http", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--join", &caller.addr().to_string()])
        .env("ENSEMBLE_SECRET", &hex_secret)
        .env(TOKEN_ENV, token.as_str())
        .env("RUST_LOG", "warn");
        let http = cmd
            .get_args()
            .skip_while(|x| *x != "--http")
            .nth(1)
            .and_then(|x| x.to_str())
            .expect("set above")
            .to_string();
        agents.push((Proc::spawn(cmd, &dir.join(format!("{name}.log")))?, http));
    }
    let table: Table<String, String> = caller.table("bench", TableOptions::set()).await?;
    wait_until(
        "the replicas to join",
        Duration::from_secs(30),
        async || table.info().await.is_ok_and(|i| i.members.len() == 3),
    )
    .await?;
    let value = "x".repeat(16);

    // Callers run as tasks on the runtime's workers, as a service's request handlers do (and
    // as the CETS callers were Erlang processes on the node's schedulers). A caller on the
    // thread that blocks on the runtime would pay a cross-thread wake-up for every reply.
    let (n, t) = (a.sync, Instant::now());
    tokio::spawn({
        let (table, value) = (table.clone(), value.clone());
        async move {
            for i in 0..n {
                table.insert(format!("s{i}"), value.clone()).await?;
            }
            Ok::<_, ensemble::Error>(())
        }
    })
    .await??;
    let sync = n as f64 / t.elapsed().as_secs_f64();

    let per = a.concurrent / a.callers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.callers {
        let (table, value) = (table.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                table.insert(format!("c{c}-{i}"), value.clone()).await?;
            }
            Ok::<_, ensemble::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let concurrent = (per * a.callers) as f64 / t.elapsed().as_secs_f64();

    let batches: Vec<Vec<(String, String)>> = (0..a.batches)
        .map(|b| {
            (0..a.batch)
                .map(|i| (format!("m{b}-{i}"), value.clone()))
                .collect()
        })
        .collect();
    let t = Instant::now();
    for batch in &batches {
        table.insert_many(batch).await?;
    }
    let many = (a.batches * a.batch) as f64 / t.elapsed().as_secs_f64();

    let expected = a.sync + per * a.callers + a.batches * a.batch;
    verify(&table, &agents, &token, "bench", expected).await?;

    // An empty node joins a table of `join_records` records.
    let join: Table<String, String> = caller.table("join", TableOptions::set()).await?;
    wait_until(
        "the join table's replicas",
        Duration::from_secs(30),
        async || join.info().await.is_ok_and(|i| i.members.len() == 3),
    )
    .await?;
    let records: Vec<(String, String)> = (0..a.join_records)
        .map(|i| (format!("j{i}"), value.clone()))
        .collect();
    for chunk in records.chunks(a.batch.max(1)) {
        join.insert_many(chunk).await?;
    }
    let joiner = Node::start(node_config("bench-3", &secret, vec![])).await?;
    let replica: Table<String, String> = joiner.table("join", TableOptions::set()).await?;
    let t = Instant::now();
    joiner.join(caller.addr()).await?;
    wait_until(
        "the empty node's replica",
        Duration::from_secs(60),
        async || {
            replica.len() == a.join_records
                && replica
                    .info()
                    .await
                    .is_ok_and(|i| i.members.len() == 4 && !i.paused)
        },
    )
    .await?;
    let join_ms = t.elapsed().as_secs_f64() * 1000.0;
    verify(&join, &agents, &token, "join", a.join_records).await?;

    joiner.shutdown().await;
    caller.shutdown().await;
    for (mut p, _) in agents {
        p.stop(Duration::from_secs(5));
    }
    Ok(TablesReport {
        replicas: 3,
        sync_inserts_per_s: sync,
        callers: a.callers,
        concurrent_inserts_per_s: concurrent,
        batch: a.batch,
        insert_many_records_per_s: many,
        join_records: a.join_records,
        join_ms,
        records_verified: expected,
    })
}

/// Every replica holds exactly `expected` records, the same keys as the caller's.
async fn verify(
    table: &Table<String, String>,
    agents: &[(Proc, String)],
    token: &Token,
    name: &str,
    expected: usize,
) -> Result<()> {
    let mut ours: Vec<String> = table.snapshot()?.into_iter().map(|(k, _)| k).collect();
    ours.sort();
    if ours.len() != expected {
        bail!(
            "the caller's replica of {name} holds {} records, {expected} were written",
            ours.len()
        );
    }
    for (_, http) in agents {
        let path = format!("/v1/tables/{name}/records");
        let api = ApiClient::new(http)?
            .token(token.clone())
            .timeout(Duration::from_secs(60));
        let records: Vec<RecordView> =
            tokio::task::spawn_blocking(move || all_records(&api, &path))
                .await?
                .with_context(|| format!("cannot read the replica of {http}"))?;
        let mut keys: Vec<String> = records.into_iter().map(|r| r.key).collect();
        keys.sort();
        if keys != ours {
            bail!(
                "the replica of {name} at {http} differs: {} records, {expected} expected",
                keys.len()
            );
        }
    }
    Ok(())
}
