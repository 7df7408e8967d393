//! How the workloads call the agents: one call timed and recorded as an [`Op`], its outcome
//! read from the answer (an error answer that means nothing was done is `Fail`; no answer, or
//! one that leaves it open, is `Unknown`), and each client's own seeded random source.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::client::{AgentError, ApiClient};

use super::history::{Op, Outcome};
use super::workload::{Ctx, Endpoint};

/// The outcome of a call that failed: `Fail` for an answer that says nothing was done (4xx,
/// 503 `node_stopped`, 507), `Unknown` for no answer, a timeout, or another 5xx (504: some
/// replicas were late, the write may be applied).
pub fn outcome_of(e: &anyhow::Error) -> Outcome {
    match e.downcast_ref::<AgentError>() {
        Some(a) if a.status() < 500 || a.status() == 507 || a.code() == "node_stopped" => {
            Outcome::Fail(format!("{} {}", a.status(), a.code()))
        }
        Some(a) => Outcome::Unknown(format!("{} {}", a.status(), a.code())),
        None => Outcome::Unknown(format!("{e:#}")),
    }
}

/// Whether `e` is the agent's answer with `status`.
pub fn is_status(e: &anyhow::Error, status: u16) -> bool {
    e.downcast_ref::<AgentError>()
        .is_some_and(|a| a.status() == status)
}

/// Calls agent `e` with `f`, records the operation `kind` with `detail` and the outcome (the
/// answer's own fields added by `answered` when it succeeded), and returns the answer.
pub fn call<T>(
    ctx: &Ctx,
    kind: &str,
    e: &Endpoint,
    mut detail: serde_json::Value,
    f: impl FnOnce(&ApiClient) -> anyhow::Result<T>,
    answered: impl FnOnce(&T, &mut serde_json::Value),
) -> anyhow::Result<T> {
    let invoked_ms = ctx.clock.now_ms();
    let result = ctx.client(e).and_then(|c| f(&c));
    let outcome = match &result {
        Ok(answer) => {
            answered(answer, &mut detail);
            Outcome::Ok
        }
        Err(err) => outcome_of(err),
    };
    ctx.history.push(Op {
        kind: kind.to_string(),
        agent: e.name.clone(),
        invoked_ms,
        completed_ms: ctx.clock.now_ms(),
        outcome,
        detail,
    });
    result
}

/// Client `client`'s random source, from the workload's seed.
pub fn rng(ctx: &Ctx, client: u64) -> SmallRng {
    SmallRng::seed_from_u64(ctx.seed ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The clients of a workload that only sends: how many threads, and the pause after each send.
#[derive(Debug, Clone, Copy)]
pub struct Senders {
    pub clients: u64,
    pub pause: std::time::Duration,
}

impl Default for Senders {
    fn default() -> Senders {
        Senders {
            clients: 2,
            pause: std::time::Duration::from_millis(100),
        }
    }
}

impl Senders {
    /// Runs the clients until the end: each calls `send(rng, agents, client, n)` for its
    /// `n`-th send (from 1), then pauses.
    pub fn run(&self, ctx: &Ctx, send: impl Fn(&mut SmallRng, &[Endpoint], u64, u64) + Sync) {
        std::thread::scope(|s| {
            for id in 0..self.clients {
                let send = &send;
                s.spawn(move || {
                    let mut rng = rng(ctx, id);
                    let mut n = 0u64;
                    while ctx.clock.now_ms() < ctx.until_ms {
                        let all = ctx.endpoints.all();
                        if !all.is_empty() {
                            n += 1;
                            send(&mut rng, &all, id, n);
                        }
                        std::thread::sleep(self.pause);
                    }
                });
            }
        });
    }
}
