//! The client commands: each asks a running agent through its HTTP API (`client::ApiClient`)
//! and prints the answer for people, or as JSON with `--json` (`keygen` asks nobody). [`ApiArgs`]
//! are the flags every one of them takes to reach the agent.
//!
//! Imports `client` and `views`, never the agent's server (`http`, `agent`).

pub mod discovery;
pub mod events;
pub mod info;
pub mod join;
pub mod keygen;
pub mod keys;
pub mod leave;
pub mod members;
pub mod monitor;
pub mod partition;
pub mod query;
pub mod send;
pub mod singleton;
pub mod table;
pub mod tags;
pub mod tracker;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::client::ApiClient;
use crate::views::DEFAULT_HTTP;

/// How a command reaches its agent: the address, the token, and for HTTPS the CA to trust.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// The agent's HTTP API: HOST:PORT, or https://HOST:PORT for an agent serving TLS.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = DEFAULT_HTTP,
        env = "ENSEMBLE_HTTP_ADDR",
        global = true
    )]
    pub http: String,
    /// File holding the API token [default: ENSEMBLE_HTTP_TOKEN, else ~/.ensemble/http-token
    /// ($ENSEMBLE_HOME/http-token), which a local agent created].
    #[arg(
        long,
        value_name = "FILE",
        env = "ENSEMBLE_HTTP_TOKEN_FILE",
        global = true
    )]
    pub http_token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed an https:// agent's certificate [default:
    /// ENSEMBLE_HTTP_CA, else the usual public roots].
    #[arg(long, value_name = "FILE", global = true)]
    pub http_ca_file: Option<PathBuf>,
}

impl ApiArgs {
    /// The client these flags describe.
    pub fn client(&self) -> Result<ApiClient> {
        ApiClient::connect(
            &self.http,
            self.http_token_file.as_deref(),
            self.http_ca_file.as_deref(),
        )
    }
}

/// `s` as one URL path segment or query value: readable where it can be, the rest escaped.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prints `answer` as pretty JSON.
pub fn print_json(answer: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(answer)?);
    Ok(())
}
