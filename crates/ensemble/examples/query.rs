//! Three nodes in one process answer queries (Serf's `query`): each registers a handler for
//! "uptime", and one node asks all of them, then only one.
//!
//! Run with `cargo run -p ensemble --example query`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ensemble::{Config, Node, QueryEvent, QueryOptions, Secret};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), ensemble::Error> {
    let secret = Secret::new("example-cluster-secret-0123456789")?;
    let started = Instant::now();
    let mut nodes: Vec<Node> = Vec::new();
    for name in ["a", "b", "c"] {
        let mut config = Config::new(name, "127.0.0.1:0".parse().unwrap(), secret.clone());
        if let Some(first) = nodes.first() {
            config.seeds.push(first.addr());
        }
        let node = Node::start(config).await?;
        // The handler gets the query and returns the response (None: no response).
        let me = name.to_owned();
        node.register_query_handler("uptime", move |_query| {
            let answer = format!("{me} up {:?}", started.elapsed());
            async move { Some(Bytes::from(answer)) }
        })
        .await?;
        nodes.push(node);
    }
    while nodes.iter().any(|n| n.members().len() < 3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for nodes_asked in [vec![], vec!["c".to_owned()]] {
        let options = QueryOptions {
            nodes: nodes_asked,
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let mut events = nodes[0].query("uptime", "", options).await?;
        while let Some(event) = events.next().await {
            match event {
                QueryEvent::Ack { from } => println!("Ack from '{from}'"),
                QueryEvent::Response { from, payload } => {
                    println!(
                        "Response from '{from}': {}",
                        String::from_utf8_lossy(&payload)
                    )
                }
                QueryEvent::Done { acks, responses } => {
                    println!("Total Acks: {acks} / Total Responses: {responses}")
                }
            }
        }
    }
    for n in &nodes {
        n.leave().await;
    }
    Ok(())
}
