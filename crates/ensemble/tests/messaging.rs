//! Named messaging between nodes in one process, over real TCP on 127.0.0.1.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use ensemble::{Error, Watch};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_cast_reach_a_registered_name() {
    let nodes = cluster(3).await;
    let mut jobs = nodes[1].register("jobs").await.unwrap();
    nodes[0]
        .forward_message("n1", "jobs", "build 42", Duration::from_secs(2))
        .await
        .unwrap();
    let e = jobs.recv().await.unwrap();
    assert_eq!((e.from.as_str(), e.name.as_str()), ("n0", "jobs"));
    assert_eq!(&e.payload[..], b"build 42");
    nodes[2].cast_message("n1", "jobs", "fire").await.unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"fire");

    // Clear errors, never a silent drop.
    let err = nodes[0]
        .forward_message("n1", "nobody", "x", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownName { node, name } if node == "n1" && name == "nobody"),
        "{err}"
    );
    // To itself: straight to its own mailbox.
    nodes[1].cast_message("n1", "jobs", "self").await.unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"self");
    let err = nodes[0].cast_message("n9", "jobs", "x").await.unwrap_err();
    assert!(matches!(&err, Error::UnknownNode(n) if n == "n9"), "{err}");
    let err = nodes[1].register("jobs").await.unwrap_err();
    assert!(matches!(err, Error::DuplicateName(_)), "{err}");

    // Dropping the mailbox frees the name.
    drop(jobs);
    wait_for_async(|| async { nodes[1].register("jobs").await.is_ok() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_message_is_retransmitted_across_a_short_cut() {
    let nodes = cluster(2).await;
    let mut jobs = nodes[1].register("jobs").await.unwrap();
    // n1 drops everything from n0 for 300 ms: the first copy is lost.
    let cut = nodes[1].inject_partition(["n0".to_string()]).await.unwrap();
    let sender = nodes[0].clone();
    let send = tokio::spawn(async move {
        sender
            .forward_message("n1", "jobs", "once", Duration::from_secs(5))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[1].resolve_partition(cut).await.unwrap();
    send.await.unwrap().unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"once");
    // Delivered once, though sent more than once.
    let more = tokio::time::timeout(Duration::from_millis(700), jobs.recv()).await;
    assert!(more.is_err(), "a second copy: {more:?}");

    // A cut that outlasts the timeout is a clear timeout.
    let cut = nodes[1].inject_partition(["n0".to_string()]).await.unwrap();
    let err = nodes[0]
        .forward_message("n1", "jobs", "late", Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("no acknowledgement from n1"),
        "{err}"
    );
    nodes[1].resolve_partition(cut).await.unwrap();
}

/// A partition with a time to live heals by itself: an acknowledged message sent into it gets
/// through once it has expired, with nobody resolving it. Partisan's origin form cuts one
/// member off and refuses an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_with_a_time_to_live_heals_by_itself() {
    let nodes = cluster(2).await;
    let mut jobs = nodes[1].register("jobs").await.unwrap();
    let cut = nodes[1]
        .inject_partition_for(["n0".to_string()], Duration::from_millis(500))
        .await
        .unwrap();
    assert!(nodes[1].partitions().contains_key(&cut), "in force");
    nodes[0]
        .forward_message("n1", "jobs", "through", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(&jobs.recv().await.unwrap().payload[..], b"through");
    assert!(nodes[1].partitions().is_empty(), "expired");
    assert!(nodes[1].resolve_partition(cut).await.is_err(), "gone");

    let cut = nodes[1].inject_partition_origin("n0", None).await.unwrap();
    assert_eq!(nodes[1].partitions()[&cut].len(), 1);
    nodes[1].resolve_partition(cut).await.unwrap();
    let err = nodes[1].inject_partition_origin("nobody", None).await;
    assert!(matches!(err, Err(Error::UnknownNode(_))), "{err:?}");
}

async fn wait_for_async<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_up_and_on_down_callbacks_fire_for_the_members_they_watch() {
    let nodes = cluster(2).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = (seen.clone(), seen.clone());
    nodes[0].on_up(Watch::Any, move |n| {
        a.lock().unwrap().push(format!("up {n}"))
    });
    nodes[0].on_down(Watch::Node("n2".into()), move |n| {
        b.lock().unwrap().push(format!("down {n}"))
    });
    let n2 = start("n2", &[nodes[0].addr()]).await;
    let n3 = start("n3", &[nodes[0].addr()]).await;
    wait_for(Duration::from_secs(10), "n2 and n3 come up", || {
        let s = seen.lock().unwrap();
        s.contains(&"up n2".to_string()) && s.contains(&"up n3".to_string())
    })
    .await;
    n3.leave().await;
    n2.leave().await;
    wait_for(Duration::from_secs(10), "n2's leave is reported", || {
        seen.lock().unwrap().contains(&"down n2".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = seen.lock().unwrap();
    assert!(
        !s.contains(&"down n3".to_string()),
        "only n2 is watched: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_left_everywhere_and_stops() {
    let nodes = cluster(3).await;
    let err = nodes[0].remove("n0").await.unwrap_err();
    assert!(err.to_string().contains("leave()"), "{err}");
    nodes[0].remove("n2").await.unwrap();
    wait_for(Duration::from_secs(10), "n1 sees n2 left", || {
        status(&nodes[1], "n2") == Some(ensemble::Status::Left)
    })
    .await;
    // n2 heard it and stopped.
    let mut stopped = false;
    for _ in 0..100 {
        if matches!(nodes[2].broadcast_status(None).await, Err(Error::Stopped)) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "the removed node still runs");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&nodes[0], "n2"), Some(ensemble::Status::Left));
    assert!(matches!(
        nodes[0].remove("n9").await,
        Err(Error::UnknownNode(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_on_one_channel_does_not_delay_another() {
    let start_with_bulk = |name: &'static str, seeds: Vec<std::net::SocketAddr>| {
        let mut c = config(name, 0);
        c.seeds = seeds;
        c.channels = vec!["bulk".into()];
        ensemble::Node::start(c)
    };
    let a = start_with_bulk("a", vec![]).await.unwrap();
    let b = start_with_bulk("b", vec![a.addr()]).await.unwrap();
    wait_for(Duration::from_secs(10), "a and b see each other", || {
        a.members().len() == 2 && b.members().len() == 2
    })
    .await;
    let mut bulk = b.register("bulk").await.unwrap();
    let mut ctl = b.register("ctl").await.unwrap();
    // 120 frames of 256 KiB (30 MiB) queued on "bulk", then one small message on the default
    // channel. With one queue per connection it would arrive after all 120.
    const BULK: usize = 120;
    let chunk = bytes::Bytes::from(vec![7u8; 256 * 1024]);
    for _ in 0..BULK {
        a.cast_message_on("bulk", "b", "bulk", chunk.clone())
            .await
            .unwrap();
    }
    a.cast_message("b", "ctl", "urgent").await.unwrap();
    let mut before = 0;
    loop {
        tokio::select! {
            biased;
            m = ctl.recv() => {
                assert_eq!(&m.unwrap().payload[..], b"urgent");
                break;
            }
            m = bulk.recv() => {
                m.unwrap();
                before += 1;
            }
        }
    }
    assert!(
        before < BULK / 2,
        "the control message waited for {before} bulk frames"
    );
    // The bulk channel loses nothing meanwhile.
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in before..BULK {
            bulk.recv().await.unwrap();
        }
    });
    rest.await.expect("every bulk frame arrives");

    // Channels must be declared; the error names the fix.
    let err = a
        .cast_message_on("video", "b", "ctl", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownChannel(c) if c == "video"),
        "{err}"
    );
    assert!(err.to_string().contains("Config::channels"), "{err}");
    let mut bad = config("c", 0);
    bad.channels = vec!["default".into()];
    assert!(ensemble::Node::start(bad).await.is_err());
}
