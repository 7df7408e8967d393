//! The `dns` backend: every A/AAAA address of a name is a node, or every target of its SRV
//! records. Kubernetes: point it at a headless service.

use std::net::SocketAddr;
use std::time::Duration;

use ensemble_proto::discovery::DiscoveredNode;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Resolver, TokioResolver};

use super::{Backend, DiscoveryError};

/// DNS discovery. A name starting with `_` (like `_ensemble._tcp.example.org`) is looked up
/// as SRV records (each target host and port is a node); any other name as A and AAAA records
/// (each address, with the given port, is a node). Answers are never cached between polls.
pub struct DnsBackend {
    name: String,
    port: u16,
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsBackend")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish()
    }
}

impl DnsBackend {
    /// Looks up `name` with the name server at `server` (UDP), or with the system's resolver
    /// configuration (`/etc/resolv.conf`) when `server` is `None`. `port` is the cluster port
    /// of nodes found by A/AAAA records (SRV records carry their own).
    pub fn new(
        name: impl Into<String>,
        port: u16,
        server: Option<SocketAddr>,
    ) -> Result<Self, DiscoveryError> {
        let name = name.into();
        let mut opts = ResolverOpts::default();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        let builder = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                Resolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => Resolver::builder_tokio().map_err(|e| DiscoveryError::Dns {
                name: name.clone(),
                reason: format!("cannot read the system resolver configuration: {e}"),
            })?,
        };
        let resolver = builder.with_options(opts).build();
        Ok(DnsBackend {
            name,
            port,
            resolver,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> DiscoveryError {
        DiscoveryError::Dns {
            name: self.name.clone(),
            reason: e.to_string(),
        }
    }

    async fn srv(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        let records = self
            .resolver
            .srv_lookup(self.name.as_str())
            .await
            .map_err(|e| self.error(e))?;
        let mut nodes = Vec::new();
        for srv in records.iter() {
            let target = srv.target().to_utf8();
            let host = target.trim_end_matches('.');
            match self.resolver.lookup_ip(srv.target().clone()).await {
                Ok(ips) => {
                    nodes.extend(ips.iter().map(|ip| {
                        DiscoveredNode::addr(SocketAddr::new(ip, srv.port()).to_string())
                    }))
                }
                // Its probe fails and says why.
                Err(_) => nodes.push(DiscoveredNode::addr(format!("{host}:{}", srv.port()))),
            }
        }
        Ok(nodes)
    }

    async fn addresses(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        let ips = self
            .resolver
            .lookup_ip(self.name.as_str())
            .await
            .map_err(|e| self.error(e))?;
        Ok(ips
            .iter()
            .map(|ip| DiscoveredNode::addr(SocketAddr::new(ip, self.port).to_string()))
            .collect())
    }
}

#[async_trait::async_trait]
impl Backend for DnsBackend {
    fn name(&self) -> &'static str {
        "dns"
    }

    async fn get_nodes(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        let mut nodes = if self.name.starts_with('_') {
            self.srv().await?
        } else {
            self.addresses().await?
        };
        nodes.sort();
        nodes.dedup();
        Ok(nodes)
    }
}
