//! `ApiClient`: the one client of an agent's HTTP API, used by every command, the demo and
//! the benches. JSON in and out, the bearer token on every call (found as `token.rs` says),
//! HTTPS for an `https://` address (trusting `--http-ca-file` / `ENSEMBLE_HTTP_CA` if given),
//! a timeout per call, and errors people can act on: an agent that cannot be reached says so
//! and names `--http`; an error answer becomes an [`AgentError`] carrying the agent's own
//! message (its JSON `error`) and `code`.
//!
//! Imports the JSON shapes from `views`, the token finder from `token`, and nothing of the
//! agent's server.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::token::{self, Token, CA_ENV};
use crate::views::ErrorView;

/// How long a call may take, unless the command sets another.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP API of the agent at one address (`--http`).
pub struct ApiClient {
    /// As the user gave it (HOST:PORT or https://HOST:PORT), for messages.
    http: String,
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    base: String,
    agent: ureq::Agent,
    timeout: Duration,
    token: Option<Token>,
}

impl ApiClient {
    /// A client of the agent at `http` (HOST:PORT, or https://HOST:PORT), with calls of at most
    /// 5 s, the token found the usual way (`ENSEMBLE_HTTP_TOKEN`, else the per-user file) and
    /// for HTTPS the CA of `ENSEMBLE_HTTP_CA`, if set.
    pub fn new(http: &str) -> Result<ApiClient> {
        ApiClient::connect(http, None, None)
    }

    /// A client of the agent at `http`, with the token of `token_file` and the CA certificate
    /// of `ca_file` (each found the usual way if None).
    pub fn connect(
        http: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> Result<ApiClient> {
        let token = token::for_client(token_file)?;
        let ca = ca_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CA_ENV).map(PathBuf::from));
        let mut builder = ureq::AgentBuilder::new().timeout_connect(TIMEOUT);
        let base = match http.strip_prefix("https://") {
            Some(rest) => {
                if let Some(ca) = &ca {
                    builder = builder.tls_config(tls_trusting(ca)?);
                }
                format!("https://{}", rest.trim_end_matches('/'))
            }
            None => format!(
                "http://{}",
                http.strip_prefix("http://")
                    .unwrap_or(http)
                    .trim_end_matches('/')
            ),
        };
        Ok(ApiClient {
            http: http.to_owned(),
            base,
            agent: builder.build(),
            timeout: TIMEOUT,
            token,
        })
    }

    /// The same client with calls of at most `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
    }

    /// The same client sending `token` (an agent the caller started with that token).
    pub fn token(mut self, token: Token) -> ApiClient {
        self.token = Some(token);
        self
    }

    /// A request with the token, if any.
    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let req = self.agent.request(method, url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {}", t.as_str())),
            None => req,
        }
    }

    /// `GET path`, decoded from JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None::<&()>)
    }

    /// `POST path` with a JSON body, the answer decoded from JSON.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call("POST", path, Some(body))
    }

    /// `PUT path` with a JSON body, the answer decoded from JSON.
    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call("PUT", path, Some(body))
    }

    /// `DELETE path`, the answer decoded from JSON.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("DELETE", path, None::<&()>)
    }

    /// `DELETE path` with a JSON body, the answer decoded from JSON.
    pub fn delete_with<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.call("DELETE", path, Some(body))
    }

    /// `GET path` as a stream of lines, with no time limit once connected (the event stream).
    pub fn lines(&self, path: &str) -> Result<impl BufRead> {
        let req = self.request("GET", &self.url(path));
        let resp = self.answer(req.call())?;
        Ok(BufReader::new(resp.into_reader()))
    }

    /// `POST path` with a JSON body, the answer as a stream of lines, all within the client's
    /// timeout (a query's answers).
    pub fn post_lines(&self, path: &str, body: &impl Serialize) -> Result<impl BufRead> {
        let req = self.request("POST", &self.url(path)).timeout(self.timeout);
        let resp = self.answer(req.send_json(body))?;
        Ok(BufReader::new(resp.into_reader()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let url = self.url(path);
        let req = self.request(method, &url).timeout(self.timeout);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        self.answer(resp)?
            .into_json()
            .with_context(|| format!("bad answer from {url}"))
    }

    /// The answer if it succeeded; else why not.
    fn answer(&self, resp: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response> {
        match resp {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let e = AgentError::from_answer(status, &text);
                if e.code == "unauthorized" && self.token.is_none() {
                    return Err(anyhow::Error::new(e).context(
                        "no HTTP token found: pass --http-token-file FILE or set \
                         ENSEMBLE_HTTP_TOKEN (the agent's user has it in ~/.ensemble/http-token)",
                    ));
                }
                Err(e.into())
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot reach the agent at {} (is `ensemble agent` running? set --http)",
                    self.http
                )
            }),
        }
    }
}

/// TLS settings that trust the CA certificates (PEM) in `ca` and nothing else.
fn tls_trusting(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .and_then(|c| c.collect())
        .with_context(|| format!("CA file {}: not a PEM certificate", ca.display()))?;
    for c in certs {
        roots
            .add(c)
            .with_context(|| format!("CA file {}: a certificate rustls refuses", ca.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("CA file {}: no certificate in it", ca.display());
    }
    // ring, as ureq uses (no C toolchain needed); rustls deprecates it only for lacking
    // post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An error answer of the agent: its HTTP status, its `code`, and its message, which is what
/// the user sees.
#[derive(Debug)]
pub struct AgentError {
    status: u16,
    code: String,
    message: String,
}

impl AgentError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The answer's `code` (empty from an agent that sent none).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// From an error answer's status and body (JSON `{"error", "code"}` from an agent; any
    /// other text is shown with the status).
    fn from_answer(status: u16, body: &str) -> AgentError {
        match serde_json::from_str::<ErrorView>(body) {
            Ok(v) => AgentError {
                status,
                code: v.code,
                message: v.error,
            },
            Err(_) if body.trim().is_empty() => AgentError {
                status,
                code: String::new(),
                message: String::new(),
            },
            Err(_) => AgentError {
                status,
                code: String::new(),
                message: format!("the agent answered HTTP {status}: {}", body.trim()),
            },
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.message.is_empty(), self.code.is_empty()) {
            (false, _) => f.write_str(&self.message),
            (true, false) => write!(f, "the agent answered HTTP {} ({})", self.status, self.code),
            (true, true) => write!(f, "the agent answered HTTP {}", self.status),
        }
    }
}

impl std::error::Error for AgentError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_shows_the_agents_message() {
        let e =
            AgentError::from_answer(404, r#"{"error": "no key \"k\"", "code": "key_not_found"}"#);
        assert_eq!((e.status, e.code.as_str()), (404, "key_not_found"));
        assert_eq!(e.to_string(), "no key \"k\"");
        let e = AgentError::from_answer(503, "upstream down\n");
        assert_eq!(e.to_string(), "the agent answered HTTP 503: upstream down");
        assert_eq!(
            AgentError::from_answer(502, "").to_string(),
            "the agent answered HTTP 502"
        );
        let e = AgentError::from_answer(500, r#"{"error": "", "code": "internal"}"#);
        assert_eq!(e.to_string(), "the agent answered HTTP 500 (internal)");
    }
}
