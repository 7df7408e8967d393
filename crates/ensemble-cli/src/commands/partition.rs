//! Fault injection: `ensemble partition inject|resolve|list` (see `http/routes/partitions.rs`).

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::de::IgnoredAny;

use crate::views::{Inject, PartitionView};

#[derive(Args, Debug)]
pub struct PartitionArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    #[command(subcommand)]
    what: PartitionWhat,
}

#[derive(Subcommand, Debug)]
enum PartitionWhat {
    /// Drop all traffic between the agent and these members; prints the reference.
    Inject {
        /// Member names.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Resolve the partition by itself after this many milliseconds (at most 86400000,
        /// a day); without it, it lasts until `resolve`.
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
    /// End an injected partition.
    Resolve {
        /// The reference `inject` printed.
        reference: u64,
    },
    /// List the partitions in force.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// `ensemble partition ...`.
pub fn run(args: PartitionArgs) -> Result<()> {
    let client = args.api.client()?;
    match args.what {
        PartitionWhat::Inject { nodes, ttl_ms } => {
            let v: serde_json::Value = client.post("/v1/partitions", &Inject { nodes, ttl_ms })?;
            println!("{}", v["ref"]);
        }
        PartitionWhat::Resolve { reference } => {
            client.delete::<IgnoredAny>(&format!("/v1/partitions/{reference}"))?;
        }
        PartitionWhat::List { json } => {
            let list: Vec<PartitionView> = client.get("/v1/partitions")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for p in list {
                    println!("{}  {}", p.reference, p.nodes.join(" "));
                }
            }
        }
    }
    Ok(())
}
