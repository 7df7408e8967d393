//! Reachability probe of one discovered address: resolve it, open a TCP connection within a
//! time limit, then join through it.

use std::net::SocketAddr;
use std::time::Duration;

use ensemble_proto::discovery::ProbeResult;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::node::Node;

/// Probes `addr` (`HOST:PORT`) and joins through it. Never blocks a runtime thread: name
/// resolution and the connect are asynchronous and bounded by `limit` each, the join by `join_limit`.
pub(crate) async fn probe(
    node: &Node,
    addr: &str,
    limit: Duration,
    join_limit: Duration,
) -> ProbeResult {
    let resolved: Vec<SocketAddr> = match timeout(limit, tokio::net::lookup_host(addr)).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return ProbeResult::Failed(format!("cannot resolve {addr:?}: {e}")),
        Err(_) => {
            return ProbeResult::Failed(format!("resolving {addr:?} took over {limit:?}"));
        }
    };
    let Some(&target) = resolved.first() else {
        return ProbeResult::Failed(format!("{addr:?} resolves to no address"));
    };
    if target == node.addr() {
        return ProbeResult::Local;
    }
    match timeout(limit, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => drop(stream),
        Ok(Err(e)) => return ProbeResult::Failed(format!("cannot connect to {target}: {e}")),
        Err(_) => {
            return ProbeResult::Failed(format!("connecting to {target} took over {limit:?}"));
        }
    }
    match timeout(join_limit, node.join(target)).await {
        Ok(Ok(name)) if name == node.name() => ProbeResult::Local,
        Ok(Ok(name)) => ProbeResult::Joined { name, addr: target },
        Ok(Err(e)) => ProbeResult::Failed(e.to_string()),
        Err(_) => ProbeResult::Failed(format!(
            "{target} did not complete a join within {join_limit:?}"
        )),
    }
}
