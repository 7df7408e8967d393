//! Three nodes in one process share a replicated table of chat sessions: local reads,
//! synchronous and asynchronous writes, an insert decided once for the cluster, a change
//! stream, and a replica that goes down.
//!
//! Run with `cargo run -p ensemble --example tables`.

use std::time::Duration;

use ensemble::{Config, Node, Secret, TableOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    room: String,
    login_at: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::new("example-cluster-secret-0123456789")?;
    let mut nodes: Vec<Node> = Vec::new();
    for name in ["chat1", "chat2", "chat3"] {
        let mut config = Config::new(name, "127.0.0.1:0".parse().unwrap(), secret.clone());
        config.seeds = nodes.iter().map(|n| n.addr()).take(1).collect();
        nodes.push(Node::start(config).await?);
    }

    // Each node opens the table; replicas on connected nodes join by themselves. On a join
    // after a split, a user logged in on both sides keeps the later login.
    let mut tables = Vec::new();
    for node in &nodes {
        let options = TableOptions::<String, Session>::set()
            .conflict_handler(|_user, a, b| {
                if a.login_at >= b.login_at {
                    a.clone()
                } else {
                    b.clone()
                }
            })
            .handle_down(|node| println!("  handle_down: the replica on {node} went down"));
        tables.push(node.table("sessions", options).await?);
    }
    while tables[0].info().await?.members.len() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("replicas: {:?}", tables[0].info().await?.members);

    let mut changes = tables[2].subscribe();
    let alice = Session {
        room: "lobby".into(),
        login_at: 1,
    };
    tables[0].insert("alice".into(), alice.clone()).await?;
    // Synchronous: every replica has it now, and reads are local.
    println!(
        "chat3 reads alice: {:?}",
        tables[2].get(&"alice".to_string())?
    );
    println!("chat3 saw: {:?}", changes.recv().await?);

    // Asynchronous writes, waited for under one deadline.
    let mut ids = Vec::new();
    for i in 0..10 {
        let s = Session {
            room: format!("room-{i}"),
            login_at: 2,
        };
        ids.push(tables[1].insert_async(format!("user{i}"), s).await?);
    }
    let results = tables[1].wait_responses(ids, Duration::from_secs(5)).await;
    println!("10 async writes ok: {}", results.iter().all(Result::is_ok));

    // insert_new goes through the leader: exactly one node wins the room lock.
    let mut winners = Vec::new();
    for t in &tables {
        let lock = Session {
            room: "lock".into(),
            login_at: 3,
        };
        winners.push(t.insert_new("room-lock".into(), lock).await?);
    }
    println!("insert_new winners: {winners:?}");

    // A replica goes away: writes complete without it, survivors run handle_down.
    nodes.pop().expect("three").shutdown().await;
    tables[0]
        .insert(
            "bob".into(),
            Session {
                room: "lobby".into(),
                login_at: 4,
            },
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = tables[1].info().await?;
    println!(
        "after chat3 stopped: members {:?}, {} records",
        info.members, info.size
    );
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}
