//! `ApiClient`: the one client of an agent's HTTP API, used by every command, the demo and
//! the benches. JSON in and out, a timeout per call, and errors people can act on: an agent
//! that cannot be reached says so and names `--http`; an error answer becomes an
//! [`AgentError`] carrying the agent's own message (its JSON `error`) and `code`.
//!
//! Imports the JSON shapes from `views` and nothing of the agent's server.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::views::ErrorView;

/// How long a call may take, unless the command sets another.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP API of the agent at one address (`--http`).
pub struct ApiClient {
    http: String,
    agent: ureq::Agent,
    timeout: Duration,
}

impl ApiClient {
    /// A client of the agent at `http` (HOST:PORT), with calls of at most 5 s.
    pub fn new(http: &str) -> ApiClient {
        ApiClient {
            http: http.to_owned(),
            agent: ureq::AgentBuilder::new().timeout_connect(TIMEOUT).build(),
            timeout: TIMEOUT,
        }
    }

    /// The same client with calls of at most `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
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

    /// `GET path` as a stream of lines, with no time limit once connected (the event stream).
    pub fn lines(&self, path: &str) -> Result<impl BufRead> {
        let req = self.agent.request("GET", &self.url(path));
        let resp = self.answer(req.call())?;
        Ok(BufReader::new(resp.into_reader()))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let url = self.url(path);
        let req = self.agent.request(method, &url).timeout(self.timeout);
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
                Err(AgentError::from_answer(status, &text).into())
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

/// An error answer of the agent: its HTTP status, its `code`, and its message, which is what
/// the user sees.
#[derive(Debug)]
pub struct AgentError {
    status: u16,
    code: String,
    message: String,
}

impl AgentError {
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
