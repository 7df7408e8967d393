//! `ensemble nemesis-leader --fence ADDR` (hidden): the command of the campaign's singletons.
//! While it runs (the agent runs it while leading) it appends `start`, then a `tick` every
//! 200 ms, and `stop` on SIGTERM, each with its epoch (`ENSEMBLE_EPOCH`) and node
//! (`ENSEMBLE_NODE`), to the nemesis's fenced log.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::fence::{AppendRequest, Mark};

#[derive(Args, Debug)]
pub struct LeaderArgs {
    /// HOST:PORT of the fenced log.
    #[arg(long)]
    fence: String,
}

/// Appends stop after this long without reaching the log (the nemesis has gone).
const GIVE_UP: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(200);

pub fn run(args: LeaderArgs) -> Result<()> {
    let epoch: u64 = std::env::var("ENSEMBLE_EPOCH")
        .context("ENSEMBLE_EPOCH is not set (run by an agent's --singleton)")?
        .parse()
        .context("ENSEMBLE_EPOCH")?;
    let node = std::env::var("ENSEMBLE_NODE").context("ENSEMBLE_NODE is not set")?;
    crate::procs::runtime()?.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut conn: Option<BufReader<TcpStream>> = None;
        let mut last_ok = tokio::time::Instant::now();
        let mut mark = Mark::Start;
        loop {
            let req = AppendRequest {
                epoch,
                node: node.clone(),
                mark,
                time_ms: super::wall_ms(),
            };
            match tokio::time::timeout(Duration::from_secs(2), append(&mut conn, &args.fence, &req))
                .await
            {
                Ok(Ok(())) => last_ok = tokio::time::Instant::now(),
                _ => conn = None,
            }
            if mark == Mark::Stop || last_ok.elapsed() > GIVE_UP {
                return Ok(());
            }
            if mark == Mark::Start && conn.is_some() {
                mark = Mark::Tick;
            }
            tokio::select! {
                _ = term.recv() => mark = Mark::Stop,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    })
}

/// Sends one append on the connection (opened if needed) and reads the answer.
async fn append(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: &str,
    req: &AppendRequest,
) -> Result<()> {
    if conn.is_none() {
        *conn = Some(BufReader::new(TcpStream::connect(addr).await?));
    }
    let c = conn.as_mut().expect("connected");
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    c.get_mut().write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    if c.read_line(&mut answer).await? == 0 {
        anyhow::bail!("the fenced log closed the connection");
    }
    Ok(())
}
