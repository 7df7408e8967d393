//! A client-server cluster: two servers, three clients (the last one given another client as
//! its seed, which refers it to the servers). A client sends to another client on a channel of
//! its own; a server relays the message and the acknowledgement.
//!
//! `cargo run -p ensemble --example client_server`

use std::net::SocketAddr;
use std::time::Duration;

use ensemble::{Config, Node, Role, Secret, Topology};

async fn start(
    name: &str,
    role: Role,
    seed: Option<SocketAddr>,
    secret: &Secret,
) -> Result<Node, ensemble::Error> {
    let mut config = Config::new(name, SocketAddr::from(([127, 0, 0, 1], 0)), secret.clone());
    config.membership.topology = Topology::ClientServer(role);
    config.seeds = seed.into_iter().collect();
    config.channels = vec!["bulk".into()];
    Node::start(config).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::new("example-secret-0123456789")?;
    let s1 = start("s1", Role::Server, None, &secret).await?;
    let s2 = start("s2", Role::Server, Some(s1.addr()), &secret).await?;
    let c1 = start("c1", Role::Client, Some(s1.addr()), &secret).await?;
    let c2 = start("c2", Role::Client, Some(s2.addr()), &secret).await?;
    // c3 only knows c1: c1 refuses the connection and names the servers instead.
    let c3 = start("c3", Role::Client, Some(c1.addr()), &secret).await?;
    let all = [&s1, &s2, &c1, &c2, &c3];
    // Everyone sees everyone, and each client holds its two servers (the default
    // `servers_per_client`).
    for _ in 0..200 {
        let mut settled = all.iter().all(|n| n.members().len() == all.len());
        for c in [&c1, &c2, &c3] {
            settled &= c.connections().await?.len() == 2;
        }
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in all {
        println!("{} is connected to {:?}", n.name(), n.connections().await?);
    }

    let mut inbox = c2.register("uploads").await?;
    c3.forward_message_on("bulk", "c2", "uploads", "chunk 1", Duration::from_secs(5))
        .await?;
    let e = inbox.recv().await.expect("delivered");
    println!(
        "c2 got {:?} from {} (relayed by a server, acknowledged end to end)",
        String::from_utf8_lossy(&e.payload),
        e.from
    );
    for n in all {
        n.leave().await;
    }
    Ok(())
}
