//! `ensemble tags set K=V... | delete K...`: change the agent's tags (`PUT /v1/tags`,
//! `DELETE /v1/tags`), like `serf tags -set/-delete`; the other tags stay, and an agent with
//! `--tags-file` keeps them across restarts.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::views::{DeleteTagsBody, SetTagsBody, TagsView};

#[derive(Args, Debug)]
pub struct TagsArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    #[command(subcommand)]
    op: TagsOp,
    /// Print the JSON answer (the tags now) instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum TagsOp {
    /// Add or change tags.
    Set {
        #[arg(value_name = "KEY=VALUE", required = true, value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Remove tags.
    Delete {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

pub(super) fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub fn run(args: TagsArgs) -> Result<()> {
    let client = args.api.client()?;
    let answer: TagsView = match args.op {
        TagsOp::Set { tags } => client.put(
            "/v1/tags",
            &SetTagsBody {
                tags: tags.into_iter().collect(),
            },
        )?,
        TagsOp::Delete { keys } => client.delete_with("/v1/tags", &DeleteTagsBody { keys })?,
    };
    if args.json {
        return super::print_json(&answer);
    }
    for (k, v) in &answer.tags {
        println!("{k}={v}");
    }
    if let Some(f) = &answer.tags_file {
        println!("(saved in {f})");
    }
    Ok(())
}
