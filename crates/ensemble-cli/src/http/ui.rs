//! `GET /ui`: the dashboard (docs/DASHBOARD.md), a single page of hand-written HTML, CSS and
//! JavaScript embedded in the binary (`ui/`). Its files hold no data and are served without the
//! token (`auth::guard` lets exactly [`ASSETS`] through); the page asks for the token and reads
//! everything through the API with it. Nothing runs in the agent for the dashboard but these
//! answers and the API's own routes while a browser has it open.
//!
//! Every file is sent with a Content-Security-Policy that allows only the agent's own scripts,
//! styles and connections (no inline script, no other origin), and may not be framed.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::state::AppState;

/// The dashboard's files: the only paths, besides the probes, answered without the token.
pub const ASSETS: [&str; 6] = [
    "/ui",
    "/ui/",
    "/ui/app.js",
    "/ui/app.css",
    "/ui/data.js",
    "/ui/timeline.js",
];

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");
/// A member's details, the tables and tracker views.
const DATA_SCRIPT: &str = include_str!("ui/data.js");
/// The timeline, from the agent's history.
const TIMELINE_SCRIPT: &str = include_str!("ui/timeline.js");

/// What the page may load and reach: the agent's own files and API, nothing inline, nothing
/// from elsewhere (the icon is an empty `data:` image).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ASSETS[0], get(index))
        .route(ASSETS[1], get(index))
        .route(ASSETS[2], get(script))
        .route(ASSETS[3], get(style))
        .route(ASSETS[4], get(data_script))
        .route(ASSETS[5], get(timeline_script))
}

/// `body` as `content_type`, with the headers every file of the dashboard carries.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (HeaderName::from_static("content-security-policy"), POLICY),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn data_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", DATA_SCRIPT)
}

async fn timeline_script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", TIMELINE_SCRIPT)
}
