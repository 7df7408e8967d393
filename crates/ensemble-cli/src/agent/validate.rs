//! `ensemble validate CONFIG`: checks an agent config file as `ensemble agent --config CONFIG`
//! would read it (with the `ENSEMBLE_*` variables set in the environment), without starting a
//! node, binding a port, or creating any file: the settings are built with
//! [`Files::CheckOnly`], then checked as `Node::start` checks them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser};

use super::config::{build_config, Files};
use super::{logging, settings, AgentArgs};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The config file (TOML) to check.
    #[arg(value_name = "CONFIG")]
    config: PathBuf,
}

/// The agent's flags, for reading them as the agent would.
#[derive(Parser)]
#[command(name = "agent")]
struct AgentFlags {
    #[command(flatten)]
    args: AgentArgs,
}

pub fn validate(v: ValidateArgs) -> Result<()> {
    let path = v.config.as_os_str();
    let matches = AgentFlags::command()
        .try_get_matches_from([std::ffi::OsStr::new("agent"), "--config".as_ref(), path])
        .context("the agent's settings from the environment")?;
    let flags = AgentFlags::from_arg_matches(&matches)?;
    // Some discovery backends are built on the async runtime.
    let rt = crate::procs::runtime()?;
    rt.block_on(async {
        let (config, agent) = build_config(&flags.args, Files::CheckOnly)?;
        let file = settings::FileSettings::load(&v.config)?;
        logging::settings(&flags.args, Some(&file))?;
        config
            .check()
            .with_context(|| format!("config file {}", v.config.display()))?;
        settings::resolve("http", &agent.http)?;
        if let Some(m) = &agent.metrics_addr {
            settings::resolve("metrics_addr", m)?;
        }
        if let Some((cert, key)) = &agent.tls {
            crate::http::tls_acceptor(cert, key)?;
        }
        anyhow::Ok(())
    })?;
    println!("configuration is valid");
    Ok(())
}
