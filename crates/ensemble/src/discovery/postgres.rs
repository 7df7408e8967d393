//! The `postgres` backend: nodes register in a `discovery_nodes` table (after CETS's RDBMS
//! backend) and read each other's rows, over TLS as the URL's `sslmode` asks (the `tls`
//! submodule).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ensemble_proto::discovery::DiscoveredNode;
use tokio::sync::Mutex;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{debug, info};

use super::{Backend, DiscoveryError};

mod tls;

/// One lock key for every writer of `discovery_nodes`: creating the table and picking node
/// numbers are serialised by the database.
const LOCK_KEY: i64 = 0x656e_7365_6d62_6c65;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS discovery_nodes (
    cluster_name TEXT NOT NULL,
    node_name TEXT NOT NULL,
    node_num INT NOT NULL,
    address TEXT NOT NULL,
    updated_timestamp TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster_name, node_name),
    UNIQUE (cluster_name, node_num))";

/// Settings of the PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresOptions {
    /// Connection URL, e.g.
    /// `postgres://ensemble@db.example.org:5432/ensemble?sslmode=verify-full&sslrootcert=/etc/ensemble/db-ca.pem`,
    /// or a libpq `key=value` string. `sslmode` is `disable`, `prefer` (the default),
    /// `require`, `verify-ca` or `verify-full`; `sslrootcert` is a PEM file of trusted root
    /// certificates, or `system` (docs/DISCOVERY.md says what each does).
    pub url: String,
    /// The cluster name: rows of other clusters are ignored.
    pub cluster: String,
    /// This node's member name.
    pub node_name: String,
    /// The address other nodes dial to reach this node.
    pub addr: SocketAddr,
    /// Rows not refreshed for this long are deleted (default 1 hour). Keep it well above the
    /// `regular` retry delay (5 min), or live nodes expire between polls.
    pub expiry: Duration,
}

impl PostgresOptions {
    /// Options with the default expiry.
    pub fn new(url: impl Into<String>, cluster: &str, node_name: &str, addr: SocketAddr) -> Self {
        PostgresOptions {
            url: url.into(),
            cluster: cluster.to_owned(),
            node_name: node_name.to_owned(),
            addr,
            expiry: Duration::from_secs(3600),
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    /// The URL is shown with its password replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &tls::redact(&self.url))
            .field("cluster", &self.cluster)
            .field("node_name", &self.node_name)
            .field("addr", &self.addr)
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// PostgreSQL discovery. Each `get_nodes`, in one transaction: creates `discovery_nodes` if
/// missing, deletes the cluster's rows older than the expiry (by the database clock),
/// refreshes this node's row (or inserts it with the lowest free node number >= 1), and returns
/// the cluster's rows. A lost connection is opened again at the next poll.
pub struct PostgresBackend {
    options: PostgresOptions,
    /// The URL without `sslmode` and `sslrootcert`, which `tls` carries out.
    config: tokio_postgres::Config,
    tls: tls::TlsSettings,
    /// `None` for `sslmode=disable`.
    connector: Option<MakeRustlsConnect>,
    /// Host(s) and port(s), for the log.
    target: String,
    client: Mutex<Option<Client>>,
    node_num: AtomicU32,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("cluster", &self.options.cluster)
            .field("node_name", &self.options.node_name)
            .field("target", &self.target)
            .field("tls", &self.tls.to_string())
            .finish()
    }
}

impl PostgresBackend {
    /// The `application_name` the backend's sessions show in `pg_stat_activity` and
    /// `pg_stat_ssl`, unless the URL names another.
    pub const APPLICATION_NAME: &'static str = "ensemble-discovery";

    /// A backend for these options; fails if the URL does not parse, if its TLS settings
    /// are not supported, or if the `sslrootcert` file (or the system's store, for
    /// `verify-ca`/`verify-full` without one) yields no certificate. The root certificates
    /// are read here, once.
    pub fn new(options: PostgresOptions) -> Result<Self, DiscoveryError> {
        let bad = |e: String| DiscoveryError::Database(format!("the URL does not parse: {e}"));
        let (rest, tls) = tls::split(&options.url).map_err(bad)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        config.ssl_mode(tls.mode.negotiation());
        config.connect_timeout(Duration::from_secs(5));
        if config.get_application_name().is_none() {
            config.application_name(Self::APPLICATION_NAME);
        }
        let connector = tls
            .client_config()
            .map_err(|e| DiscoveryError::Database(format!("TLS: {e}")))?
            .map(MakeRustlsConnect::new);
        let target = target(&config);
        Ok(PostgresBackend {
            options,
            config,
            tls,
            connector,
            target,
            client: Mutex::new(None),
            node_num: AtomicU32::new(0),
        })
    }

    async fn connect(&self) -> Result<Client, String> {
        let client = match &self.connector {
            Some(rustls) => open(&self.config, rustls.clone()).await,
            None => open(&self.config, NoTls).await,
        }
        .map_err(|e| {
            let text = describe(&e);
            // rustls names this one only by its variant.
            let hint = match text.contains("UnknownIssuer") {
                true => " (the server's certificate chain does not end at a trusted root)",
                false => "",
            };
            format!("{text}{hint} [{}]", self.tls)
        })?;
        // The server's word on this session's encryption (pg_stat_ssl, PostgreSQL 9.5+).
        let encryption = match client
            .query_opt(
                "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
        {
            Ok(Some(row)) => match row.get::<_, Option<String>>(0) {
                Some(version) => format!("encrypted, {version}"),
                None => "not encrypted".into(),
            },
            Ok(None) | Err(_) => "encryption unknown".into(),
        };
        info!(
            "discovery: connected to PostgreSQL at {} ({encryption}; {})",
            self.target, self.tls
        );
        Ok(client)
    }

    async fn poll(
        &self,
        client: &mut Client,
    ) -> Result<Vec<DiscoveredNode>, tokio_postgres::Error> {
        let o = &self.options;
        let addr = o.addr.to_string();
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        tx.batch_execute(CREATE).await?;
        tx.execute(
            "DELETE FROM discovery_nodes WHERE cluster_name = $1 AND node_name <> $2 \
             AND updated_timestamp < now() - make_interval(secs => $3)",
            &[&o.cluster, &o.node_name, &o.expiry.as_secs_f64()],
        )
        .await?;
        let updated = tx
            .query_opt(
                "UPDATE discovery_nodes SET address = $3, updated_timestamp = now() \
                 WHERE cluster_name = $1 AND node_name = $2 RETURNING node_num",
                &[&o.cluster, &o.node_name, &addr],
            )
            .await?;
        let row = match updated {
            Some(row) => row,
            None => {
                tx.query_one(
                    "INSERT INTO discovery_nodes \
                     (cluster_name, node_name, node_num, address, updated_timestamp) \
                     SELECT $1, $2, n, $3, now() FROM generate_series(1, \
                       (SELECT count(*)::int + 1 FROM discovery_nodes WHERE cluster_name = $1)) \
                       AS n \
                     WHERE n NOT IN (SELECT node_num FROM discovery_nodes WHERE cluster_name = $1) \
                     ORDER BY n LIMIT 1 RETURNING node_num",
                    &[&o.cluster, &o.node_name, &addr],
                )
                .await?
            }
        };
        let num: i32 = row.get(0);
        let rows = tx
            .query(
                "SELECT node_name, address FROM discovery_nodes WHERE cluster_name = $1 \
                 ORDER BY node_num",
                &[&o.cluster],
            )
            .await?;
        tx.commit().await?;
        self.node_num.store(num as u32, Ordering::Relaxed);
        Ok(rows
            .iter()
            .map(|r| DiscoveredNode {
                name: Some(r.get(0)),
                addr: r.get(1),
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn get_nodes(&self) -> Result<Vec<DiscoveredNode>, DiscoveryError> {
        let mut slot = self.client.lock().await;
        // Taken out while in use: a call cancelled by its timeout drops the connection.
        let mut client = match slot.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await.map_err(DiscoveryError::Database)?,
        };
        let nodes = self
            .poll(&mut client)
            .await
            .map_err(|e| DiscoveryError::Database(describe(&e)))?;
        *slot = Some(client);
        Ok(nodes)
    }

    fn node_num(&self) -> Option<u32> {
        match self.node_num.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Opens a connection and runs it on its own task.
async fn open<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("discovery: PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// `host:port` of each host the URL names (no user, no password).
fn target(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    match hosts.is_empty() {
        true => "(no host)".into(),
        false => hosts.join(","),
    }
}

/// The error with its cause (tokio-postgres puts the useful part in the source).
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}
