//! `ensemble members`: the members an agent knows, as a table or JSON.

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
}

pub fn run(args: MembersArgs) -> Result<()> {
    let members: Vec<MemberView> = args.api.client()?.get("/v1/members")?;
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
