//! The `ensemble` binary: run an agent, query it, or watch a local demo cluster.
//!
//! Layout, with dependencies pointing down only:
//!
//! - `main.rs`: the command line; `agent/` (the agent: flags, config file, discovery backend,
//!   event and message handlers, singleton commands), `commands/` (one client command each),
//!   `demo.rs`, `bench/`, `sim/` and `nemesis/` (the fault campaign over real agents).
//! - `http/` (the agent's HTTP API: router, routes, `ApiError`) and `client.rs` (`ApiClient`,
//!   the API's one client). Neither imports the other.
//! - `tags_file.rs` (the tags file: read by the agent, written by the tags routes).
//! - `views.rs` (the API's JSON shapes, shared by both sides), `token.rs` (the API token and
//!   where both sides find it) and `procs.rs` (agent processes, ports, the async runtime).

mod agent;
mod bench;
mod client;
mod commands;
mod demo;
mod event_filter;
mod history;
mod http;
mod log_stream;
mod nemesis;
mod procs;
mod sim;
mod tags_file;
mod token;
mod views;

use clap::{Parser, Subcommand};

/// Cluster membership, failure detection and more, for Rust services.
#[derive(Parser)]
#[command(name = "ensemble", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a cluster node with a local HTTP API.
    Agent(Box<agent::AgentArgs>),
    /// List the members an agent knows (filters: --status, --name, --tag KEY=REGEX).
    Members(commands::members::MembersArgs),
    /// Join the agent to the members at these cluster addresses (like serf join).
    Join(commands::join::JoinArgs),
    /// Make the agent leave the cluster gracefully, then exit (like serf leave).
    Leave(commands::leave::LeaveArgs),
    /// Mark a member left on every member, for a failed node that will not come back
    /// (like serf force-leave).
    ForceLeave(commands::leave::ForceLeaveArgs),
    /// Set or delete the agent's tags, kept across restarts with --tags-file (like serf tags).
    Tags(commands::tags::TagsArgs),
    /// The agent at a glance: version, protocol, uptime, members, connections, tables,
    /// singletons, discovery and key settings (like serf info).
    Info(commands::info::InfoArgs),
    /// Check an agent config file (TOML, as for --config) without starting anything.
    Validate(agent::ValidateArgs),
    /// Show an agent's discovery state (backend, phase, nodes, last result).
    Discovery(commands::discovery::DiscoveryArgs),
    /// Send a user event to every member through an agent.
    Broadcast(commands::events::BroadcastArgs),
    /// Follow an agent's membership and user events as they arrive.
    Events(commands::events::EventsArgs),
    /// Stream the agent's log lines as they are written, until interrupted (like serf monitor).
    Monitor(commands::monitor::MonitorArgs),
    /// Ask every selected member a question and print their acks and responses as they
    /// arrive (like serf query).
    Query(commands::query::QueryArgs),
    /// Send a message to a handler registered under a name on a member.
    Send(commands::send::SendArgs),
    /// Read and write the agent's replicated tables (list, put, get, delete, dump, info).
    Table(commands::table::TableArgs),
    /// Every node ever seen, online or offline, and the cluster mode (the node tracker).
    Tracker(commands::tracker::TrackerArgs),
    /// The agent's singletons: who leads each, at which epoch, since when.
    Singleton(commands::singleton::SingletonArgs),
    /// Inject, resolve or list partitions on an agent (for tests; the agent must allow it).
    Partition(commands::partition::PartitionArgs),
    /// Print a new cluster key (32 random bytes, hex): for --secret-file or ENSEMBLE_SECRET.
    Keygen,
    /// Rotate the cluster key on every live node: list, install, use, remove (like serf keys).
    Keys(commands::keys::KeysArgs),
    /// Print the agent's HTTP API as an OpenAPI 3.1 document (JSON), without asking an agent:
    /// what GET /v1/openapi.json answers.
    ApiSpec,
    /// Start a local cluster, crash a node, restart it, and print the timeline.
    Demo(demo::DemoArgs),
    /// Measure real agents on 127.0.0.1 (against HashiCorp Serf when installed).
    Bench(bench::BenchArgs),
    /// Simulate a cluster deterministically (virtual clock, seeded network model).
    Sim(sim::SimArgs),
    /// Run a seeded fault campaign (partitions, pauses, kills, floods) over real agents on
    /// 127.0.0.1 and check every guarantee; exits non-zero on any violation
    /// (docs/RELIABILITY.md).
    Nemesis(nemesis::NemesisArgs),
    /// The nemesis's singleton command: appends to its fenced log while leading.
    #[command(hide = true)]
    NemesisLeader(nemesis::leader::LeaderArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent::run(*args),
        Command::Members(args) => commands::members::run(args),
        Command::Join(args) => commands::join::run(args),
        Command::Leave(args) => commands::leave::leave(args),
        Command::ForceLeave(args) => commands::leave::force_leave(args),
        Command::Tags(args) => commands::tags::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Validate(args) => agent::validate(args),
        Command::Discovery(args) => commands::discovery::run(args),
        Command::Broadcast(args) => commands::events::broadcast(args),
        Command::Events(args) => commands::events::events(args),
        Command::Monitor(args) => commands::monitor::run(args),
        Command::Partition(args) => commands::partition::run(args),
        Command::Query(args) => commands::query::run(args),
        Command::Send(args) => commands::send::run(args),
        Command::Table(args) => commands::table::run(args),
        Command::Tracker(args) => commands::tracker::run(args),
        Command::Singleton(args) => commands::singleton::run(args),
        Command::Keygen => commands::keygen::run(),
        Command::Keys(args) => commands::keys::run(args),
        Command::ApiSpec => {
            println!("{}", http::openapi::document());
            Ok(())
        }
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Nemesis(args) => nemesis::run(args),
        Command::NemesisLeader(args) => nemesis::leader::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
