//! The agent itself: `GET /v1/info` (version, protocol, uptime, members by status,
//! connections, tables, singletons, discovery, key settings), `POST /v1/join` (join members
//! at the addresses given) and `POST /v1/leave` (leave gracefully, then the agent exits).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use ensemble::discovery::Discovery;
use ensemble::Node;

use crate::http::error::{ApiError, Code};
use crate::http::extract::Json;
use crate::http::state::{AgentControl, AppState};
use crate::views::{
    AgentInfoView, BuildView, DiscoveryBrief, ErrorView, JoinBody, JoinResult, JoinView, LeaveView,
    ProtocolView, SingletonBrief, MAX_JOIN_ADDRS,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
}

/// Longest address accepted in a join, in bytes (a DNS name is at most 253).
const MAX_ADDR_LEN: usize = 261;

/// 200 with each address's result (a failed join is in the answer, not an error); 400 for no
/// address, more than 64, or one that is not HOST:PORT.
#[utoipa::path(post, path = "/v1/join", summary = "Join the members at these cluster addresses", tag = "agent", request_body = JoinBody,
    responses(
        (status = 200, description = "Each address's result, in the order given (a failed join is in the answer)", body = JoinView),
        (status = 400, description = "invalid_argument: no address, over 64, or one that is not HOST:PORT", body = ErrorView),
    ))]
async fn join(
    State(node): State<Node>,
    Json(b): Json<JoinBody>,
) -> Result<Json<JoinView>, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, msg);
    if b.addrs.is_empty() {
        return Err(bad("no address to join: give at least one HOST:PORT".into()));
    }
    if b.addrs.len() > MAX_JOIN_ADDRS {
        return Err(bad(format!(
            "{} addresses given; one join takes at most {MAX_JOIN_ADDRS}",
            b.addrs.len()
        )));
    }
    for a in &b.addrs {
        if !is_host_port(a) {
            let shown: String = a.chars().take(64).collect();
            return Err(bad(format!("{shown:?} is not HOST:PORT")));
        }
    }
    let results = futures::future::join_all(b.addrs.into_iter().map(|addr| {
        let node = node.clone();
        async move { join_one(&node, addr).await }
    }))
    .await;
    Ok(Json(JoinView {
        joined: results.iter().filter(|r| r.ok).count(),
        results,
    }))
}

/// `HOST:PORT` with a non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and
/// a port number.
fn is_host_port(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    a.len() <= MAX_ADDR_LEN
        && !host.is_empty()
        && port.parse::<u16>().is_ok()
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@')
}

async fn join_one(node: &Node, addr: String) -> JoinResult {
    let failed = |addr: String, error: String| JoinResult {
        addr,
        ok: false,
        node: None,
        error: Some(error),
    };
    let resolved = tokio::net::lookup_host(addr.clone()).await;
    let resolved = match resolved {
        Ok(mut all) => all.next(),
        Err(e) => return failed(addr, format!("cannot resolve: {e}")),
    };
    let Some(to) = resolved else {
        return failed(addr, "the name resolves to no address".into());
    };
    match node.join(to).await {
        Ok(name) => JoinResult {
            addr,
            ok: true,
            node: Some(name),
            error: None,
        },
        Err(e) => failed(addr, e.to_string()),
    }
}

/// 200 at once; the agent then leaves as on SIGTERM (its singletons hand over, the others see
/// it `left`) and exits.
#[utoipa::path(post, path = "/v1/leave", summary = "Leave the cluster gracefully; the agent then exits", tag = "agent",
    responses((status = 200, description = "At once; the agent then leaves and exits 0", body = LeaveView)))]
async fn leave(State(node): State<Node>, State(agent): State<AgentControl>) -> Json<LeaveView> {
    agent.leave.notify_one();
    Json(LeaveView {
        ok: true,
        node: node.name().to_owned(),
    })
}

/// The agent at a glance.
#[utoipa::path(get, path = "/v1/info", summary = "The agent at a glance", operation_id = "agent_info", tag = "agent",
    responses(
        (status = 200, description = "Version, protocol, uptime, members, connections, tables, singletons, discovery, settings", body = AgentInfoView),
        (status = 503, description = "node_stopped", body = ErrorView),
    ))]
async fn info(
    State(node): State<Node>,
    State(discovery): State<Discovery>,
    State(agent): State<AgentControl>,
) -> Result<Json<AgentInfoView>, ApiError> {
    let unavailable = |e| ApiError::node(StatusCode::SERVICE_UNAVAILABLE, e);
    let mut members: std::collections::BTreeMap<String, usize> =
        ["alive", "suspect", "down", "left"]
            .into_iter()
            .map(|s| (s.to_owned(), 0))
            .collect();
    for m in node.members() {
        *members.entry(m.status.to_string()).or_default() += 1;
    }
    let mut tables = node.tables().await.map_err(unavailable)?;
    tables.retain(|t| !t.starts_with(ensemble::RESERVED_TABLE_PREFIX));
    let singletons = node
        .singletons()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|s| SingletonBrief {
            name: s.name,
            role: s.role,
            leader: s.leader,
            epoch: s.epoch,
        })
        .collect();
    let system = discovery.system_info();
    let phase = serde_json::to_value(system.phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Json(AgentInfoView {
        name: node.name().to_owned(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: ProtocolView::current(),
        build: BuildView::current(),
        uptime_s: agent.started.elapsed().as_secs(),
        members,
        connections: node.connections().await.map_err(unavailable)?.len(),
        tables,
        singletons,
        discovery: DiscoveryBrief {
            backend: agent.settings.discovery_backend.clone(),
            phase,
            ready: system.ready,
        },
        settings: (*agent.settings).clone(),
    }))
}
