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

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The dashboard's files (path, content type, body): the only paths, besides the probes,
/// answered without the token. `app.js` signs in, follows the event stream and draws the
/// members, singletons and topology; `data.js` a member's details, the tables and tracker views;
/// `timeline.js` the timeline from the agent's history; `traffic.js` the traffic view;
/// `virtual.js` renders long tables virtually.
pub const ASSETS: [(&str, &str, &str); 8] = [
    ("/ui", HTML, include_str!("ui/index.html")),
    ("/ui/", HTML, include_str!("ui/index.html")),
    ("/ui/app.js", JS, include_str!("ui/app.js")),
    ("/ui/data.js", JS, include_str!("ui/data.js")),
    ("/ui/timeline.js", JS, include_str!("ui/timeline.js")),
    ("/ui/traffic.js", JS, include_str!("ui/traffic.js")),
    ("/ui/virtual.js", JS, include_str!("ui/virtual.js")),
    ("/ui/app.css", CSS, include_str!("ui/app.css")),
];

/// What the page may load and reach: the agent's own files and API, nothing inline, nothing
/// from elsewhere (the icon is an empty `data:` image).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// True for the path of one of the dashboard's files.
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == path)
}

pub fn routes() -> Router<AppState> {
    ASSETS
        .iter()
        .fold(Router::new(), |r, &(path, content_type, body)| {
            r.route(path, get(move || async move { asset(content_type, body) }))
        })
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
