//! The streaming answers (`GET /v1/events`, `GET /v1/monitor`): newline-delimited JSON, with a
//! heartbeat line (`{"type":"heartbeat"}`) every [`HEARTBEAT`] so that clients and proxies can
//! tell a quiet stream from a dead one, and the agent notices a client that went away.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::{Stream, StreamExt};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

/// How often a stream sends a heartbeat line.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// One JSON value as a line.
pub fn line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("answers serialize");
    line.push(b'\n');
    line
}

/// `lines` (each ending in a newline) as an NDJSON answer, with heartbeats between them; the
/// answer ends when `lines` does.
pub fn ndjson<S>(lines: S) -> Response
where
    S: Stream<Item = Vec<u8>> + Send + 'static,
{
    let mut tick = interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let heartbeat = line(&serde_json::json!({ "type": "heartbeat" }));
    let body = futures::stream::unfold((Box::pin(lines), tick), move |(mut lines, mut tick)| {
        let heartbeat = heartbeat.clone();
        async move {
            let next = tokio::select! {
                l = lines.next() => l?,
                _ = tick.tick() => heartbeat,
            };
            Some((Ok::<_, Infallible>(next), (lines, tick)))
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(body))
        .expect("a valid response")
}
