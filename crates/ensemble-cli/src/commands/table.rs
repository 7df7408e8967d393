//! `ensemble table list|put|get|delete|dump|info`: the agent's replicated tables (string keys
//! and values) through `/v1/tables`.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::de::IgnoredAny;

use super::encode;
use crate::client::ApiClient;
use crate::views::{InfoView, PutBody, PutView, RecordView};

#[derive(Args, Debug)]
pub struct TableArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    #[command(subcommand)]
    command: TableCommand,
}

#[derive(Subcommand, Debug)]
enum TableCommand {
    /// The tables the agent hosts.
    List {
        /// Print the JSON answer (an array of names).
        #[arg(long)]
        json: bool,
    },
    /// Write KEY = VALUE; returns once every replica has it. The agent must host the table
    /// (--table), or create it on first use (--allow-create-tables).
    Put {
        table: String,
        key: String,
        value: String,
        /// Only if no replica holds KEY (decided by the table's leader); prints `inserted` or
        /// `exists: VALUE` (the value the key holds).
        #[arg(long, conflicts_with = "serial")]
        if_absent: bool,
        /// Through the table's leader, so that serial puts are applied in one order by every
        /// replica.
        #[arg(long)]
        serial: bool,
    },
    /// Read a key from the agent's replica.
    Get {
        table: String,
        key: String,
        /// Print the JSON answer (`{"key", "value"}`).
        #[arg(long)]
        json: bool,
    },
    /// Delete a key everywhere.
    Delete { table: String, key: String },
    /// Print every record.
    Dump {
        table: String,
        #[arg(long)]
        json: bool,
    },
    /// Replicas, leader, size, memory, join id, down history.
    Info {
        table: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: TableArgs) -> Result<()> {
    let base = "/v1/tables";
    let client = args.api.client()?.timeout(Duration::from_secs(15));
    match args.command {
        TableCommand::List { json } => {
            let names: Vec<String> = client.get(base)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&names)?);
            } else {
                for t in names {
                    println!("{t}");
                }
            }
        }
        TableCommand::Put {
            table,
            key,
            value,
            if_absent,
            serial,
        } => {
            let path = format!("{base}/{}/records/{}", encode(&table), encode(&key));
            let body = PutBody {
                value,
                if_absent,
                serial,
            };
            let answer: PutView = client.put(&path, &body)?;
            match (answer.inserted, answer.value) {
                (Some(true), _) => println!("inserted"),
                (Some(false), Some(held)) => println!("exists: {held}"),
                _ => {}
            }
        }
        TableCommand::Get { table, key, json } => {
            let path = format!("{base}/{}/records/{}", encode(&table), encode(&key));
            let r: RecordView = client.get(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", r.value);
            }
        }
        TableCommand::Delete { table, key } => {
            let path = format!("{base}/{}/records/{}", encode(&table), encode(&key));
            client.delete::<IgnoredAny>(&path)?;
        }
        TableCommand::Dump { table, json } => {
            let records = all_records(&client, &format!("{base}/{}/records", encode(&table)))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for r in records {
                    println!("{}\t{}", r.key, r.value);
                }
            }
        }
        TableCommand::Info { table, json } => {
            let v: serde_json::Value = client.get(&format!("{base}/{}", encode(&table)))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let i: InfoView = serde_json::from_value(v)?;
                println!("table:        {}", i.name);
                println!("members:      {}", i.members.join(", "));
                println!("leader:       {}", i.leader);
                println!("size:         {} records", i.size);
                println!("memory:       {} bytes", i.memory);
                println!("join id:      {}", i.join_id);
                println!("digest:       {}", i.digest);
                println!("paused:       {}", i.paused);
                println!("down history: {}", i.down_history.join(", "));
                print!(
                    "joins:        {} ({} conflicts resolved)",
                    i.joins, i.conflicts_resolved
                );
                match i.last_join {
                    Some(j) => println!(
                        "; last with {} {} ms ago, took {} ms",
                        j.with, j.ago_ms, j.took_ms
                    ),
                    None => println!(),
                }
            }
        }
    }
    Ok(())
}

/// Every record at `path` (`/v1/tables/{table}/records`), read a page of 1,000 at a time.
pub fn all_records(client: &ApiClient, path: &str) -> Result<Vec<RecordView>> {
    let mut all: Vec<RecordView> = Vec::new();
    loop {
        let after = match all.last() {
            Some(r) => format!("&after={}", encode(&r.key)),
            None => String::new(),
        };
        let page: Vec<RecordView> = client.get(&format!("{path}?limit=1000{after}"))?;
        let last = page.len() < 1000;
        all.extend(page);
        if last {
            return Ok(all);
        }
    }
}
