//! `ensemble members`: the members an agent knows, as a table or JSON, filtered as
//! `serf members` filters (`--status`, `--name`, `--tag KEY=REGEX`: patterns that must match
//! the whole value, applied by the agent).

use anyhow::Result;
use clap::Args;

use crate::views::MemberView;

#[derive(Args, Debug)]
pub struct MembersArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only members whose status matches this regular expression (alive, suspect, down, left).
    #[arg(long, value_name = "REGEX")]
    status: Option<String>,
    /// Only members whose name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    name: Option<String>,
    /// Only members with tag KEY matching REGEX; repeat for more (all must match).
    #[arg(long = "tag", value_name = "KEY=REGEX")]
    tags: Vec<String>,
}

pub fn run(args: MembersArgs) -> Result<()> {
    let mut query: Vec<String> = Vec::new();
    for (key, value) in [("status", &args.status), ("name", &args.name)] {
        if let Some(v) = value {
            query.push(format!("{key}={}", super::encode(v)));
        }
    }
    for t in &args.tags {
        query.push(format!("tag={}", super::encode(t)));
    }
    let path = match query.is_empty() {
        true => "/v1/members".to_owned(),
        false => format!("/v1/members?{}", query.join("&")),
    };
    let members: Vec<MemberView> = args.api.client()?.get(&path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&members)?);
        return Ok(());
    }
    print!("{}", table(&members));
    Ok(())
}

/// A table for people: one member per line, columns aligned.
pub fn table(members: &[MemberView]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "ADDRESS".into(),
        "STATUS".into(),
        "INCARNATION".into(),
        "TAGS".into(),
    ]];
    for m in members {
        let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push([
            m.name.clone(),
            m.addr.clone(),
            m.status.clone(),
            m.incarnation.to_string(),
            tags.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
