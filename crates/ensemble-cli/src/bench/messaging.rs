//! `ensemble bench messaging`: named messaging between two nodes on 127.0.0.1, in this process.
//! With `--relay` the two are clients of a client-server topology and a third node, their
//! server, relays every message and ack (one server-relayed hop).
//!
//! Round trip: acknowledged messages one after the other (send, the receiver's handler takes it,
//! the ack comes back). Throughput: casts as fast as the sender can go, timed until the receiver's
//! mailbox has them all.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ensemble::{Config, Node, Role, Secret, Topology};
use futures::StreamExt;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct MessagingBench {
    /// Acknowledged round trips to time.
    #[arg(long, default_value_t = 5000)]
    round_trips: usize,
    /// Casts to send for the throughput figure.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Make the two nodes clients of a third, a server that relays every message between them.
    #[arg(long)]
    relay: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Figures of a messaging bench.
#[derive(Debug, Serialize)]
pub struct MessagingReport {
    /// True if every message went through a relaying server.
    pub relayed: bool,
    pub payload_bytes: usize,
    pub round_trips: usize,
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
    pub messages: usize,
    pub msgs_per_s: f64,
    pub delivered: usize,
}

pub fn run(a: MessagingBench) -> Result<()> {
    if a.round_trips == 0 || a.messages == 0 {
        bail!("--round-trips and --messages must be at least 1");
    }
    let rt = crate::procs::runtime()?;
    let r = rt.block_on(bench(&a))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Named messaging between two nodes on 127.0.0.1 ({} byte payloads{})\n\
             \n  acknowledged round trip p50 / p99   {:.0} / {:.0} us ({} round trips)\
             \n  casts                               {:.0} msgs/s ({} of {} delivered)",
            r.payload_bytes,
            if r.relayed {
                ", relayed by a server"
            } else {
                ""
            },
            r.rtt_p50_us,
            r.rtt_p99_us,
            r.round_trips,
            r.msgs_per_s,
            r.delivered,
            r.messages
        );
    }
    Ok(())
}

async fn bench(a: &MessagingBench) -> Result<MessagingReport> {
    let secret = Secret::new(format!("bench-{:032x}", rand::random::<u128>()))?;
    let start = |name: &str, seeds: Vec<std::net::SocketAddr>, role: Option<Role>| {
        let mut c = Config::new(
            name,
            "127.0.0.1:0".parse().expect("an address"),
            secret.clone(),
        );
        c.seeds = seeds;
        c.send_queue = 1 << 16;
        if let Some(r) = role {
            c.membership.topology = Topology::ClientServer(r);
        }
        Node::start(c)
    };
    let (client, server) = if a.relay {
        let server = start("bench-s", vec![], Some(Role::Server)).await?;
        (Some(Role::Client), Some(server))
    } else {
        (None, None)
    };
    let first = server.as_ref().map(|s| vec![s.addr()]).unwrap_or_default();
    let a_node = start("bench-a", first.clone(), client).await?;
    let seeds = if a.relay { first } else { vec![a_node.addr()] };
    let b_node = start("bench-b", seeds, client).await?;
    let n = if a.relay { 3 } else { 2 };
    let deadline = Instant::now() + Duration::from_secs(10);
    while a_node.members().len() < n || b_node.members().len() < n {
        if Instant::now() > deadline {
            bail!("the bench nodes did not connect within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if a.relay && a_node.connections().await? != ["bench-s"] {
        bail!("bench-a is not connected to its server alone: the messages would not be relayed");
    }
    let mut mailbox = b_node.register("bench").await?;
    let payload = bytes::Bytes::from(vec![b'x'; a.size]);

    // Round trips: wait for delivery and ack each time.
    let mut rtts = Vec::with_capacity(a.round_trips);
    let drain = tokio::spawn(async move {
        let mut n = 0usize;
        while mailbox.next().await.is_some() {
            n += 1;
        }
        n
    });
    let timeout = Duration::from_secs(5);
    for _ in 0..a.round_trips {
        let t = Instant::now();
        a_node
            .forward_message("bench-b", "bench", payload.clone(), timeout)
            .await?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    rtts.sort_by(f64::total_cmp);
    let pct = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];

    // Throughput: casts, timed until the last one is in the mailbox. The sender keeps at most
    // WINDOW casts unreceived, as an application would, so no mailbox overflows (a mailbox
    // holds 4,096 and drops beyond that).
    drain.abort();
    let mut counted = b_node.register("count").await?;
    let total = a.messages;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = received.clone();
    let counter = tokio::spawn(async move {
        let mut n = 0usize;
        let end = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(end);
        loop {
            tokio::select! {
                m = counted.next() => match m {
                    Some(_) => {
                        n += 1;
                        seen.store(n, std::sync::atomic::Ordering::Relaxed);
                        if n == total {
                            return (n, Instant::now());
                        }
                    }
                    None => return (n, Instant::now()),
                },
                _ = &mut end => return (n, Instant::now()),
            }
        }
    });
    let t0 = Instant::now();
    const WINDOW: usize = 2048;
    for i in 0..total {
        while i - received.load(std::sync::atomic::Ordering::Relaxed) >= WINDOW {
            tokio::task::yield_now().await;
        }
        a_node
            .cast_message("bench-b", "count", payload.clone())
            .await?;
    }
    let (delivered, t1) = counter.await.context("the counter stopped")?;
    let secs = (t1 - t0).as_secs_f64();
    a_node.shutdown().await;
    b_node.shutdown().await;
    if let Some(s) = server {
        s.shutdown().await;
    }
    Ok(MessagingReport {
        relayed: a.relay,
        payload_bytes: a.size,
        round_trips: a.round_trips,
        rtt_p50_us: pct(0.5),
        rtt_p99_us: pct(0.99),
        messages: total,
        msgs_per_s: delivered as f64 / secs,
        delivered,
    })
}
