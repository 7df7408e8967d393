//! The agent's HTTP API: one router over the shared state (`state.rs`), its routes (one file
//! per resource in `routes/`), and one error answer for all of them (`ApiError` in `error.rs`:
//! JSON `{"error", "code"}`, also for unknown paths, wrong methods, and the bodies and path
//! parameters axum refuses, through the extractors of `extract.rs`). `auth.rs` guards every
//! route (the bearer token, the Host rule of a loopback API); `tls.rs` serves it over HTTPS;
//! `metrics.rs` is the Prometheus recorder behind `GET /metrics`; `stream.rs` the streaming
//! answers (NDJSON with heartbeats); `openapi.rs` the OpenAPI document of every route
//! (`GET /v1/openapi.json`); `ui.rs` the dashboard's static files (`GET /ui`, the page in
//! `ui/`, which reads the API with the token it asks for).
//!
//! Imports the JSON shapes from `views` and nothing of the client commands.

mod auth;
mod error;
mod extract;
mod filter;
mod metrics;
pub mod openapi;
mod routes;
mod state;
mod stream;
mod tls;
mod ui;

use axum::Router;

pub use auth::Access;
pub use metrics::Metrics;
pub use state::{AgentControl, AgentTables, AppState, TablePolicy};
pub use tls::{acceptor as tls_acceptor, TlsListener};

/// Every route of the API behind the guard of `access`, with JSON answers for unknown paths
/// (404) and for methods a path does not take (405, with axum's `Allow` header).
pub fn router(state: AppState, access: Access) -> Router {
    Router::new()
        .merge(routes::members::routes())
        .merge(routes::member_view::routes())
        .merge(routes::agent::routes())
        .merge(routes::tags::routes())
        .merge(routes::events::routes())
        .merge(routes::history::routes())
        .merge(routes::query::routes())
        .merge(routes::broadcast::routes())
        .merge(routes::send::routes())
        .merge(routes::partitions::routes())
        .merge(routes::discovery::routes())
        .merge(routes::tables::routes())
        .merge(routes::tracker::routes())
        .merge(routes::singletons::routes())
        .merge(routes::keys::routes())
        .merge(routes::metrics::routes())
        .merge(routes::monitor::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        .fallback(error::not_found)
        // After every route: it applies to the routes already added.
        .method_not_allowed_fallback(error::method_not_allowed)
        // Around everything, the fallbacks included: a request without the token learns
        // nothing, not even which paths exist.
        .layer(axum::middleware::from_fn_with_state(access, auth::guard))
        .with_state(state)
}

/// The probes alone (`GET /v1/health`, `GET /v1/ready`, `GET /metrics`), without a token:
/// what `--metrics-addr` serves.
pub fn probes(state: AppState) -> Router {
    Router::new()
        .merge(routes::members::probes())
        .merge(routes::discovery::probes())
        .merge(routes::metrics::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}
