//! The `members` workload: reads `GET /v1/members` of a random agent every 250 ms and checks
//! that an agent that answers always sees itself alive (`members.self_alive`): whatever the
//! faults, a node never declares itself down, suspect or left while it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::history::{Op, Outcome, Verdict};
use super::workload::{Ctx, End, Workload};
use crate::client::AgentError;
use crate::views::MemberView;

pub struct Members;

const KIND: &str = "members.read";

impl Workload for Members {
    fn name(&self) -> &'static str {
        "members"
    }

    fn agent_args(&self, _name: &str, _dir: &std::path::Path) -> Vec<String> {
        Vec::new()
    }

    fn run(&self, ctx: Ctx) {
        let mut rng = StdRng::seed_from_u64(ctx.seed);
        while ctx.clock.now_ms() < ctx.until_ms {
            let all = ctx.endpoints.all();
            let Some(e) = all.choose(&mut rng) else {
                return;
            };
            let invoked_ms = ctx.clock.now_ms();
            let answer = ctx
                .client(e)
                .and_then(|c| c.get::<Vec<MemberView>>("/v1/members"));
            let (outcome, detail) = match answer {
                Ok(members) => {
                    let own = members.iter().find(|m| m.name == e.name);
                    let status = own.map_or("absent".to_string(), |m| m.status.clone());
                    (Outcome::Ok, serde_json::json!({ "self": status }))
                }
                // An error answer means the read did not happen; no answer leaves it open.
                Err(err) if err.downcast_ref::<AgentError>().is_some() => {
                    (Outcome::Fail(format!("{err:#}")), serde_json::Value::Null)
                }
                Err(err) => (
                    Outcome::Unknown(format!("{err:#}")),
                    serde_json::Value::Null,
                ),
            };
            ctx.history.push(Op {
                kind: KIND.into(),
                agent: e.name.clone(),
                invoked_ms,
                completed_ms: ctx.clock.now_ms(),
                outcome,
                detail,
            });
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn check(&self, ops: &[Op], _end: &End) -> Vec<Verdict> {
        vec![self_alive(ops)]
    }
}

/// `members.self_alive`: every answered read shows the agent read as alive.
fn self_alive(ops: &[Op]) -> Verdict {
    let reads: Vec<&Op> = ops
        .iter()
        .filter(|o| o.kind == KIND && o.outcome == Outcome::Ok)
        .collect();
    let violations: Vec<String> = reads
        .iter()
        .filter(|o| o.detail["self"] != "alive")
        .map(|o| {
            format!(
                "{} saw itself {} at {} ms",
                o.agent, o.detail["self"], o.completed_ms
            )
        })
        .collect();
    let counts = BTreeMap::from([("reads".to_string(), reads.len() as u64)]);
    Verdict::new("members.self_alive", counts, violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(agent: &str, status: &str) -> Op {
        Op {
            kind: KIND.into(),
            agent: agent.into(),
            invoked_ms: 0,
            completed_ms: 1,
            outcome: Outcome::Ok,
            detail: serde_json::json!({ "self": status }),
        }
    }

    #[test]
    fn an_agent_seeing_itself_anything_but_alive_fails() {
        assert!(self_alive(&[read("n1", "alive")]).passed);
        let v = self_alive(&[read("n1", "alive"), read("n2", "down")]);
        assert_eq!(v.violations, vec!["n2 saw itself \"down\" at 1 ms"]);
    }
}
