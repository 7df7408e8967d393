//! What every workload gets: the agents (by name, with their HTTP address as it is now: an
//! agent restarted on a new port gets a new one), the API token, a seeded random source, the
//! campaign's clock and history, and when to stop. A workload runs on threads of its own with
//! the blocking `ApiClient`, and records every operation it invokes in the history.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::client::ApiClient;
use crate::token::Token;

use super::history::{Clock, History};

/// One agent of the campaign as the clients see it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The member name.
    pub name: String,
    /// HOST:PORT of its HTTP API.
    pub http: String,
}

/// The agents, kept current by the nemesis (an agent restarted on a new port is updated here).
#[derive(Debug, Clone, Default)]
pub struct Endpoints(Arc<RwLock<Vec<Endpoint>>>);

impl Endpoints {
    pub fn new(all: Vec<Endpoint>) -> Endpoints {
        Endpoints(Arc::new(RwLock::new(all)))
    }

    pub fn all(&self) -> Vec<Endpoint> {
        self.0.read().expect("endpoints").clone()
    }

    /// Replaces the HTTP address of agent `name`.
    pub fn set_http(&self, name: &str, http: String) {
        if let Some(e) = self
            .0
            .write()
            .expect("endpoints")
            .iter_mut()
            .find(|e| e.name == name)
        {
            e.http = http;
        }
    }
}

/// What a workload is given.
#[derive(Clone)]
pub struct Ctx {
    pub endpoints: Endpoints,
    pub token: Token,
    pub clock: Clock,
    pub history: History,
    /// The workload's own seed (derived from the campaign's seed and the workload's name).
    pub seed: u64,
    /// When to stop invoking operations, in ms since the campaign started.
    pub until_ms: u64,
}

/// How long one client call may take before its outcome is `Unknown`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

impl Ctx {
    /// A client of agent `e` with the campaign's token and [`CALL_TIMEOUT`].
    pub fn client(&self, e: &Endpoint) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::connect(&e.http, None, None)?
            .token(self.token.clone())
            .timeout(CALL_TIMEOUT))
    }
}

/// When each agent's process ran, by name: `(started_ms, ended_ms)`, `None` for one still
/// running at the end (a SIGKILLed and restarted agent has two entries). Paused agents are
/// running.
pub type Lives = std::collections::BTreeMap<String, Vec<(u64, Option<u64>)>>;

/// What a checker is given after the campaign, once every fault is healed and the recovery
/// window has passed (every agent is running then).
pub struct End {
    /// The agents with their final HTTP addresses.
    pub endpoints: Endpoints,
    pub token: Token,
    pub clock: Clock,
    /// Each agent's own directory (its log, and any files its handlers wrote), by name.
    pub dirs: std::collections::BTreeMap<String, std::path::PathBuf>,
    pub lives: Lives,
    /// Every fault the nemesis applied, to ask whether two agents were cut from each other.
    pub faults: super::record::FaultRecord,
}

impl End {
    /// A client of agent `e` with the campaign's token and [`CALL_TIMEOUT`].
    pub fn client(&self, e: &Endpoint) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::connect(&e.http, None, None)?
            .token(self.token.clone())
            .timeout(CALL_TIMEOUT))
    }
}

/// One workload of the campaign and the guarantees it checks.
pub trait Workload: Send + Sync {
    /// Its name (`tables`, `broadcast`...), also the prefix of its operations' kinds.
    fn name(&self) -> &'static str;
    /// The extra `ensemble agent` flags agent `name` needs (handlers writing files under
    /// `dir`, the agent's own directory; a table to declare...). Called at every (re)start.
    fn agent_args(&self, name: &str, dir: &std::path::Path) -> Vec<String>;
    /// Runs the clients until `ctx.until_ms`, recording every operation (blocks; may start
    /// threads of its own and joins them before returning).
    fn run(&self, ctx: Ctx);
    /// Judges the workload's guarantees from the history (its own operations among them)
    /// and what it reads from the agents and their files at the end.
    fn check(&self, ops: &[super::history::Op], end: &End) -> Vec<super::history::Verdict>;
}
