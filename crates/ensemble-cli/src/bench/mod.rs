//! `ensemble bench`: measurements of real agents and nodes on 127.0.0.1, one module per bench
//! (membership against Serf, named messaging, replicated tables, singleton failover).

mod hog;
mod membership;
mod messaging;
mod singleton;
mod tables;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Convergence, crash and hang detection, idle memory and CPU, against Serf if installed.
    Membership(membership::MembershipBench),
    /// Named messaging between two nodes: acknowledged round trip and cast throughput.
    Messaging(messaging::MessagingBench),
    /// Replicated tables: sync inserts (one and many callers), insert_many, joining an empty node.
    Tables(tables::TablesBench),
    /// Singleton failover: after SIGKILL, SIGSTOP and SIGTERM of the leader; majority-rule splits.
    Singleton(singleton::SingletonBench),
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Membership(m) => membership::run(m),
        BenchWhat::Messaging(m) => messaging::run(m),
        BenchWhat::Tables(t) => tables::run(t),
        BenchWhat::Singleton(s) => singleton::run(s),
    }
}
