//! The agent's HTTP API: one router over the shared state (`state.rs`), its routes (one file
//! per resource in `routes/`), and one error answer for all of them (`ApiError` in `error.rs`:
//! JSON `{"error", "code"}`, also for unknown paths, wrong methods, and the bodies and path
//! parameters axum refuses, through the extractors of `extract.rs`). `metrics.rs` is the
//! Prometheus recorder behind `GET /metrics`.
//!
//! Imports the JSON shapes from `views` and nothing of the client commands.

mod error;
mod extract;
mod metrics;
mod routes;
mod state;

use axum::Router;

pub use metrics::Metrics;
pub use state::{AgentTables, AppState};

/// Every route of the API, with JSON answers for unknown paths (404) and for methods a path
/// does not take (405, with axum's `Allow` header).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::members::routes())
        .merge(routes::events::routes())
        .merge(routes::broadcast::routes())
        .merge(routes::send::routes())
        .merge(routes::partitions::routes())
        .merge(routes::discovery::routes())
        .merge(routes::tables::routes())
        .merge(routes::tracker::routes())
        .merge(routes::singletons::routes())
        .merge(routes::metrics::routes())
        .fallback(error::not_found)
        // After every route: it applies to the routes already added.
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}
