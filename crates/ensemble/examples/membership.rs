//! Three nodes in one process: they join, watch each other, one leaves, one crashes.
//!
//! Run with `cargo run -p ensemble --example membership`.

use std::time::Duration;

use ensemble::{Config, Node, Secret};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), ensemble::Error> {
    // Every member of a cluster shares one secret; the handshake proves it without sending it.
    let secret = Secret::new("example-cluster-secret-0123456789")?;
    let start = |name: &str| {
        // Port 0: let the OS pick; `node.addr()` tells which.
        let config = Config::new(name, "127.0.0.1:0".parse().unwrap(), secret.clone());
        Node::start(config)
    };
    let a = start("a").await?;
    let b = start("b").await?;
    let c = start("c").await?;

    // Follow a's view of the cluster in the background.
    let mut events = a.events();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            println!(
                "a sees {} {:?} (incarnation {})",
                e.member.name, e.kind, e.member.incarnation
            );
        }
    });

    // Joining one member is enough: the rest of the cluster follows by gossip.
    b.join(a.addr()).await?;
    c.join(b.addr()).await?;
    while a.members().len() < 3 {
        a.changed().await?;
    }
    for m in a.members() {
        println!("member {:<3} {} {}", m.name, m.addr, m.status);
    }

    b.set_tags([("role".to_string(), "cache".to_string())].into())
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A graceful leave is seen as `left`; a crash (here: stopping without leaving) as `down`.
    b.leave().await;
    c.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for m in a.members() {
        println!("member {:<3} {} {}", m.name, m.addr, m.status);
    }
    a.leave().await;
    Ok(())
}
