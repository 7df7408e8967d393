//! `ensemble keys list|install|use|remove`: key rotation on every live node through an agent
//! (`GET /v1/keys`, `POST /v1/keys`), answering how many nodes succeeded and which failed, like
//! `serf keys`. A key is read from standard input when not given (`-` or nothing), which keeps
//! it out of the process list.

use std::io::Read;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::views::{KeysBody, KeysView};

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    #[command(subcommand)]
    op: KeysOp,
    /// Print the JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum KeysOp {
    /// Every live node's keys, by fingerprint: how many nodes hold each, and use it.
    List,
    /// Every live node accepts KEY too (step 1 of a rotation).
    Install {
        /// The key (from `ensemble keygen`); read from standard input if `-` or left out.
        key: Option<String>,
    },
    /// Every live node dials with KEY, installed already (step 2).
    Use {
        /// The key; read from standard input if `-` or left out.
        key: Option<String>,
    },
    /// Every live node stops accepting KEY; not a primary key (step 3).
    Remove {
        /// The key; read from standard input if `-` or left out.
        key: Option<String>,
    },
}

pub fn run(args: KeysArgs) -> Result<()> {
    let client = args.api.client()?;
    let (doing, answer): (&str, KeysView) = match args.op {
        KeysOp::List => ("Listing keys", client.get("/v1/keys")?),
        KeysOp::Install { key } => ("Installing the key", change(&client, "install", key)?),
        KeysOp::Use { key } => ("Making the key primary", change(&client, "use", key)?),
        KeysOp::Remove { key } => ("Removing the key", change(&client, "remove", key)?),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print(doing, &answer);
    }
    if !answer.failed.is_empty() {
        bail!(
            "{} of {} nodes failed; run it again once they are reachable",
            answer.failed.len(),
            answer.nodes
        );
    }
    Ok(())
}

fn change(client: &crate::client::ApiClient, op: &str, key: Option<String>) -> Result<KeysView> {
    let key = match key.as_deref() {
        Some("-") | None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the key from standard input")?;
            text
        }
        Some(k) => k.to_owned(),
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("no key given: pass it, or pipe it in (`ensemble keygen`)");
    }
    let body = KeysBody { op: op.into(), key };
    client.post("/v1/keys", &body)
}

fn print(doing: &str, a: &KeysView) {
    println!("==> {doing} on every live node...");
    println!("==> {} of {} nodes succeeded", a.succeeded.len(), a.nodes);
    for (node, why) in &a.failed {
        println!("    {node}: {why}");
    }
    if !a.keys.is_empty() {
        println!("{:<18} {:>10} {:>10}", "KEY", "INSTALLED", "PRIMARY");
        for (print, using) in &a.keys {
            println!("{print:<18} {:>10} {:>10}", using.installed, using.primary);
        }
    }
}
