//! `ensemble sim client-server`: a client-server cluster and relayed client-to-client messages
//! in the simulator.

use anyhow::{bail, Result};
use clap::Args;
use ensemble_sim::{ClientServerConfig, ClientServerReport};

use super::shared::{print_report, NetArgs};

#[derive(Args, Debug)]
pub struct ClientServerSim {
    /// Servers (a full mesh among themselves).
    #[arg(long, default_value_t = 20)]
    servers: usize,
    /// Clients (each attached to two servers).
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Acknowledged messages each client sends to random other clients, once converged.
    #[arg(long, default_value_t = 1)]
    messages_per_client: usize,
    /// One-way latency of every message, in ms.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Probability that a message is lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// RNG seed; the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ClientServerSim) -> Result<()> {
    if a.servers == 0 || a.clients < 2 {
        bail!("--servers must be at least 1 and --clients at least 2");
    }
    let net = NetArgs {
        nodes: a.servers + a.clients,
        latency_ms: a.latency_ms,
        jitter_ms: 0.0,
        loss: a.loss,
        seed: a.seed,
    };
    let cfg = ClientServerConfig {
        servers: a.servers,
        clients: a.clients,
        messages_per_client: a.messages_per_client,
        sim: net.config()?,
    };
    eprintln!(
        "simulating {} servers and {} clients...",
        a.servers, a.clients
    );
    let report = ensemble_sim::client_server::run(&cfg);
    print_report(&report, a.json, || readable(&report))
}

fn ms(v: Option<u64>) -> String {
    v.map_or("never".into(), |v| format!("{v} ms"))
}

fn readable(r: &ClientServerReport) -> String {
    format!(
        "Simulated client-server cluster: {} servers, {} clients, seed {}\n\
         \n  converged after                   {}\
         \n  client-to-client connections      {}\
         \n  connections per client (max)      {}\
         \n  connections per server (mean)     {:.1}\
         \n  messages sent / delivered / acked {} / {} / {}\
         \n  failed / duplicates               {} / {}\
         \n  ack p50 / max                     {} / {}\
         \n  relay hand-overs / dropped        {} / {}\
         \n  wall time                         {:.1} s\n",
        r.servers,
        r.clients,
        r.seed,
        ms(r.convergence_ms),
        r.client_to_client_connections,
        r.max_client_connections,
        r.server_connections_mean,
        r.messages,
        r.delivered,
        r.acked,
        r.failed,
        r.duplicates,
        ms(r.ack_p50_ms),
        ms(r.ack_max_ms),
        r.relayed,
        r.relay_dropped,
        r.wall_ms as f64 / 1000.0,
    )
}
