//! A flood of half-open and slow-drip connections from one address (127.0.0.2) neither keeps
//! real nodes (from 127.0.0.1) out nor slows their joins down much: the per-address limit and
//! the first-frame deadline keep the handshake places for them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble::{Node, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

mod common;
use common::*;

/// Keeps `n` connections to `target` open from 127.0.0.2, half silent and half sending a
/// byte now and then, opening a new one half a second after each that closes.
fn flood(target: SocketAddr, n: usize, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    for i in 0..n {
        let (stop, opened) = (stop.clone(), opened.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(socket) = TcpSocket::new_v4() else {
                    return;
                };
                let from = SocketAddr::from(([127, 0, 0, 2], 0));
                if socket.bind(from).is_err() {
                    return;
                }
                if let Ok(mut stream) = socket.connect(target).await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let drip = async {
                            if i % 2 == 1 {
                                // A length prefix, then one byte at a time.
                                stream.write_all(&[0]).await.map(|_| 1)
                            } else {
                                stream.read(&mut buf).await
                            }
                        };
                        match tokio::time::timeout(Duration::from_millis(100), drip).await {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            _ => {}
                        }
                        if i % 2 == 1 {
                            // Also notice a close while dripping.
                            let peek = tokio::time::timeout(
                                Duration::from_millis(1),
                                stream.read(&mut buf),
                            );
                            if let Ok(Ok(0) | Err(_)) = peek.await {
                                break;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

/// How long `joiner` takes to join `seed` and be seen alive by it.
async fn join_time(seed: &Node, joiner: &Node) -> Duration {
    let start = Instant::now();
    joiner.join(seed.addr()).await.expect("a real node joins");
    let name = joiner.name().to_owned();
    wait_for(Duration::from_secs(10), "the seed sees the joiner", || {
        status(seed, &name) == Some(Status::Alive)
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_silent_or_dripping_connections_from_one_address_leave_room_for_real_peers() {
    let seed = start("seed", &[]).await;
    let quiet = join_time(&seed, &start("quiet", &[]).await).await;
    let (stop, opened) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    flood(seed.addr(), 500, stop.clone(), opened.clone());
    // The first 500 connections may take a SYN retransmission or two to get through.
    wait_for(Duration::from_secs(15), "the flood is on", || {
        opened.load(Ordering::Relaxed) >= 500
    })
    .await;
    // Three real nodes join one after the other, then three at once; none fails.
    let mut flooded = Vec::new();
    for i in 0..3 {
        flooded.push(join_time(&seed, &start(&format!("busy{i}"), &[]).await).await);
    }
    let (a, b, c) = (
        start("at-once-a", &[]).await,
        start("at-once-b", &[]).await,
        start("at-once-c", &[]).await,
    );
    let (ta, tb, tc) = tokio::join!(
        join_time(&seed, &a),
        join_time(&seed, &b),
        join_time(&seed, &c)
    );
    flooded.extend([ta, tb, tc]);
    stop.store(true, Ordering::Relaxed);
    let worst = flooded.iter().max().unwrap();
    eprintln!(
        "join without the flood {quiet:?}; under it {flooded:?}; {} flood connections opened",
        opened.load(Ordering::Relaxed)
    );
    // Generous: a join takes milliseconds; without the limits it waited for handshake places
    // held by the flood (seconds) or failed.
    assert!(
        *worst < Duration::from_secs(2),
        "a join took {worst:?} under the flood"
    );
    assert_eq!(seed.members().len(), 8);
}
