//! The agent's HTTP listeners: the API (HTTP, or HTTPS with `--http-tls-cert`/`--http-tls-key`)
//! behind the token and, on a loopback address, the Host rule; and with `--metrics-addr` the
//! probes alone on an address of their own, without a token.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::settings;
use crate::http::{self, Access, AppState, TlsListener};
use crate::token::Token;

/// The listeners, bound before the node starts so that an address in use stops the agent
/// at once with a message naming the setting.
pub struct Listeners {
    api: TcpListener,
    api_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    probes: Option<(TcpListener, SocketAddr)>,
}

impl Listeners {
    /// Binds the API on `http` and the probes on `metrics_addr`; reads the TLS files.
    pub async fn bind(
        http: &str,
        tls: Option<&(PathBuf, PathBuf)>,
        metrics_addr: Option<&str>,
    ) -> Result<Listeners> {
        let api_addr = settings::resolve("http", http)?;
        let tls = match tls {
            Some((cert, key)) => Some(http::tls_acceptor(cert, key)?),
            None => None,
        };
        let api = TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {api_addr} (change --http)"))?;
        let probes = match metrics_addr {
            Some(m) => {
                let addr = settings::resolve("metrics_addr", m)?;
                let l = TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen for the probes on {addr} (change --metrics-addr)")
                })?;
                Some((l, addr))
            }
            None => None,
        };
        Ok(Listeners {
            api,
            api_addr,
            tls,
            probes,
        })
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Serves the API (requests need `token`) and the probes until the tasks are aborted.
    pub fn serve(self, state: AppState, token: &Token) -> Result<Vec<JoinHandle<()>>> {
        let addr = self.api_addr;
        if !addr.ip().is_loopback() && self.tls.is_none() {
            warn!(
                "the HTTP API listens on {addr}, beyond this machine, without TLS: its token \
                 and everything else cross the network in the clear (set --http-tls-cert and \
                 --http-tls-key, or bind --http to 127.0.0.1)"
            );
        }
        let mut tasks = Vec::new();
        if let Some((listener, probes_addr)) = self.probes {
            info!("probes (health, ready, metrics) on http://{probes_addr}");
            let app = http::probes(state.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    warn!("the probes' listener stopped: {e}");
                }
            }));
        }
        let app = http::router(state, Access::new(token.as_str(), addr));
        tasks.push(match self.tls {
            Some(acceptor) => {
                let listener = TlsListener::new(self.api, acceptor)?;
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        warn!("HTTPS API stopped: {e}");
                    }
                })
            }
            None => {
                let listener = self.api;
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        warn!("HTTP API stopped: {e}");
                    }
                })
            }
        });
        Ok(tasks)
    }
}
