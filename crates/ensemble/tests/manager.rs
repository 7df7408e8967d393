//! Partisan's peer service manager calls over real TCP on 127.0.0.1: asynchronous join,
//! membership set from outside, members for orchestration, capabilities, the encoded local
//! state, raw messages to a node's manager.

use std::time::Duration;

use ensemble::{Capability, LocalState, Node, Status};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestration_sets_the_membership_from_outside() {
    let a = start("m0", &[]).await;
    let b = start("m1", &[]).await;
    let c = start("m2", &[]).await;
    // Partisan's join: returns at once, the join completes in the background.
    a.join_async(b.addr()).await.unwrap();
    let ab = [a.clone(), b.clone()];
    wait_for(Duration::from_secs(20), "m0 and m1 meet", || {
        all_see(&ab, &names(&ab), Status::Alive)
    })
    .await;
    // The list the orchestrator wants: m0 and m2. m2 is joined, m1 removed.
    let update = a.update_members(&[a.addr(), c.addr()]).await.unwrap();
    assert_eq!(update.joining, vec![c.addr()]);
    assert_eq!(update.removed, vec!["m1".to_string()]);
    let ac = [a.clone(), c.clone()];
    wait_for(Duration::from_secs(20), "m0 and m2 meet", || {
        all_see(&ac, &names(&ac), Status::Alive)
    })
    .await;
    wait_for(Duration::from_secs(20), "m1 is gone from m0's view", || {
        status(&a, "m1").is_none_or(|s| !s.is_up())
    })
    .await;
    let live: Vec<String> = a
        .members_for_orchestration()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(live, ["m0", "m2"]);
    let refused = a.update_members(&vec![a.addr(); 10_001]).await;
    assert!(refused.is_err(), "too many addresses");

    // Capabilities: relays and referrals only in client-server.
    assert!(a.supports_capability(Capability::AcknowledgedMessages));
    assert!(!a.supports_capability(Capability::Relay));

    // The local state, encoded and decoded.
    let state = LocalState::decode(&a.get_local_state().await.unwrap()).unwrap();
    assert_eq!(state.name, "m0");
    assert_eq!(state.connections, ["m2"]);
    assert!(state.members.iter().any(|m| m.name == "m2"));
    assert!(LocalState::decode(b"\xff\xff").is_err());

    // Raw messages to a node's manager.
    let mut inbox = c.receive_messages().await.unwrap();
    assert!(
        c.receive_messages().await.is_err(),
        "one receiver at a time"
    );
    a.send_message("m2", "hello manager").await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.from.as_str(), &e.payload[..]),
        ("m0", &b"hello manager"[..])
    );
    let _: Node = b;
}
