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
        if let Some(e) = self.0.write().expect("endpoints").iter_mut().find(|e| e.name == name) {
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
