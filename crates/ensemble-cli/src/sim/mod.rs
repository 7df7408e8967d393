//! `ensemble sim membership|broadcast|client-server`: run a scenario in the deterministic
//! simulator, one module per scenario (what they share is in `shared.rs`).

mod broadcast;
mod client_server;
mod membership;
mod shared;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(subcommand)]
    what: SimWhat,
}

#[derive(Subcommand, Debug)]
enum SimWhat {
    /// Membership and failure detection: convergence, detection time, false positives, traffic.
    Membership(membership::MembershipSim),
    /// Plumtree broadcast under a Maelstrom-style workload: messages per op, latency, delivery.
    Broadcast(broadcast::BroadcastSim),
    /// A client-server cluster: convergence, connections, relayed client-to-client messages.
    ClientServer(client_server::ClientServerSim),
}

pub fn run(args: SimArgs) -> Result<()> {
    match args.what {
        SimWhat::Membership(a) => membership::run(a),
        SimWhat::Broadcast(b) => broadcast::run(b),
        SimWhat::ClientServer(c) => client_server::run(c),
    }
}
