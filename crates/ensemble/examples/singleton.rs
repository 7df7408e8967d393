//! Three nodes run an activator for one singleton; one leads, with timers; stopping it hands
//! over to the next at once, at a higher fencing epoch.
//!
//! `cargo run -p ensemble --example singleton`

use std::net::SocketAddr;
use std::time::Duration;

use ensemble::{Config, Node, Secret, Singleton, SingletonEvent, SingletonOptions};

/// Prints its events; ticks every 200 ms while leading.
struct Billing {
    node: String,
}

impl Singleton for Billing {
    type State = Option<u64>;

    fn init(&mut self) -> Option<u64> {
        None
    }

    fn event(&mut self, epoch: Option<u64>, event: SingletonEvent) -> Option<u64> {
        println!("{}: {event:?}", self.node);
        match event {
            SingletonEvent::NowLeader { epoch } => Some(epoch),
            SingletonEvent::NowFollower { .. } | SingletonEvent::Shutdown { .. } => None,
            _ => epoch,
        }
    }

    fn next_timer_in(&self, epoch: &Option<u64>) -> Option<Duration> {
        epoch.map(|_| Duration::from_millis(200))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::new("example-secret-0123456789")?;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..3 {
        let mut config = Config::new(
            format!("n{i}"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            secret.clone(),
        );
        config.seeds = nodes.first().map(|n| n.addr()).into_iter().collect();
        nodes.push(Node::start(config).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut handles = Vec::new();
    for n in &nodes {
        let handler = Billing {
            node: n.name().to_string(),
        };
        handles.push(
            n.singleton("billing-cron", handler, SingletonOptions::new())
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    for s in nodes[1].singletons().await? {
        println!(
            "n1 sees {} led by {:?} at epoch {}",
            s.name, s.leader, s.epoch
        );
    }
    println!("-- stopping the leader's activator");
    handles.remove(0).stop().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}
