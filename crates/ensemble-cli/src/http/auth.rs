//! Who may use the API: every request but the probes (`GET /v1/health`, `GET /v1/ready`,
//! `GET /metrics`) and the dashboard's static files (`ui::ASSETS`, no data in them) carries
//! `Authorization: Bearer <token>`, compared in constant time (else 401 `unauthorized`); and an
//! API bound to a loopback address answers only requests whose `Host` names a loopback address
//! or `localhost` (else 403 `bad_host`), so that a web page cannot reach it through DNS
//! rebinding (its requests name the attacker's host).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Code};
use super::ui::is_asset;

/// The probes: answered without a token (load balancers, Kubernetes, Prometheus).
pub const PROBES: [&str; 3] = ["/v1/health", "/v1/ready", "/metrics"];

/// What the guard checks.
#[derive(Clone)]
pub struct Access {
    /// The bearer token's bytes.
    token: Arc<[u8]>,
    /// Only loopback and `localhost` hosts (the API listens on a loopback address).
    loopback_hosts: bool,
}

impl Access {
    /// Requests need `token`; `bound` is the API's address (loopback: the Host rule applies).
    pub fn new(token: &str, bound: SocketAddr) -> Access {
        Access {
            token: token.as_bytes().into(),
            loopback_hosts: bound.ip().is_loopback(),
        }
    }

    /// True if the `Authorization` header holds the bearer token (constant-time comparison
    /// of the token's bytes).
    fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        // The scheme is case-insensitive (RFC 9110); one space follows it.
        let Some(given) = header
            .map(HeaderValue::as_bytes)
            .filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer "))
            .map(|h| &h[7..])
        else {
            return false;
        };
        bool::from(given.trim_ascii().ct_eq(&self.token))
    }
}

/// Whether `host` (a `Host` header: `name[:port]`, `[v6]:port`) names this machine by a
/// loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8946` or `[::1]`.
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => v6,
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: Host rule first, then the token (probes excepted).
pub async fn guard(State(access): State<Access>, req: Request, next: Next) -> Response {
    if access.loopback_hosts {
        // No Host header: not a browser, so not DNS rebinding; the token still decides.
        if let Some(host) = req.headers().get(HOST) {
            let ok = host.to_str().is_ok_and(is_loopback_host);
            if !ok {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    Code::BadHost,
                    "this agent's API listens on a loopback address and answers only requests \
                     for localhost or a loopback address (Host header)",
                )
                .into_response();
            }
        }
    }
    // The probes, and the dashboard's files (no data in them: the page asks for the token).
    let path = req.uri().path();
    let open = req.method() == Method::GET && (PROBES.contains(&path) || is_asset(path));
    if !open && !access.authorized(req.headers().get(AUTHORIZATION)) {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "missing or wrong token: send `Authorization: Bearer <token>`; the agent's token is \
             in its --http-token-file, ENSEMBLE_HTTP_TOKEN, or ~/.ensemble/http-token \
             ($ENSEMBLE_HOME/http-token) of the user running it",
        )
        .into_response();
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for ok in [
            "127.0.0.1:8946",
            "127.0.0.1",
            "127.8.9.10:1",
            "localhost:8946",
            "LOCALHOST",
            "localhost.",
            "[::1]:8946",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8946",
            "localhost.evil.example",
            "10.0.0.1:8946",
            "0.0.0.0:8946",
            "[::2]:1",
            "[::1",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_bearer_token_authorizes() {
        let a = Access::new("0123456789abcdef0123", "127.0.0.1:1".parse().unwrap());
        let h = |s: &str| Some(HeaderValue::from_str(s).unwrap());
        assert!(a.authorized(h("Bearer 0123456789abcdef0123").as_ref()));
        assert!(a.authorized(h("bearer 0123456789abcdef0123").as_ref()));
        assert!(!a.authorized(None));
        assert!(!a.authorized(h("Bearer 0123456789abcdef012").as_ref()));
        assert!(!a.authorized(h("Bearer 0123456789abcdef01234").as_ref()));
        assert!(!a.authorized(h("Basic 0123456789abcdef0123").as_ref()));
        assert!(!a.authorized(h("Bearer ").as_ref()));
    }
}
