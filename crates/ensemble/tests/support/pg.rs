//! A throwaway PostgreSQL for tests: `initdb` in a temp dir, `pg_ctl start` on a free loopback
//! port, trust authentication, stopped and removed on drop (also when a test panics).
//! [`Pg::start_tls`] starts one that takes TCP connections over TLS only, with a certificate
//! from a CA made by the test (rcgen).
//!
//! PostgreSQL refuses to run as root: as root the binaries run as user `postgres` through
//! `runuser`. Missing binaries fail the test when `CI=true`, and skip it otherwise.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Pg {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// The `postgres` user's password (instances started with TLS).
    password: Option<String>,
}

/// The DNS name in the TLS instance's certificate (with the IP address 127.0.0.1); it does
/// not resolve: connecting to `localhost` reaches the server under a name not in it.
pub const CERT_NAME: &str = "db.ensemble.test";

/// A new self-signed CA (ECDSA P-256) named `name`.
pub fn new_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for 127.0.0.1 and [`CERT_NAME`] issued by `ca`: (certificate PEM,
/// private key PEM).
fn server_cert(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec![CERT_NAME.to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_NAME);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &**ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Where `initdb` and `pg_ctl` are.
fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec!["/usr/local/bin".into()];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

/// A free TCP port below the ephemeral range, never the same twice in one process: tests
/// running at once pick ports before their nodes bind them, and must not pick the same one.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = rand::thread_rng().gen_range(20000..32000);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1");
}

impl Pg {
    /// Starts a fresh instance, or returns `None` (after printing why) when PostgreSQL is not
    /// installed and `CI` is not `true`.
    pub fn start() -> Option<Pg> {
        Pg::start_with(None)
    }

    /// Starts a fresh instance with `ssl = on` that takes TCP connections over TLS only
    /// (`hostssl` in pg_hba.conf, SCRAM with `password` for user `postgres`); its server
    /// certificate (127.0.0.1 and [`CERT_NAME`]) is issued by a CA made here, whose
    /// certificate is [`Pg::ca_file`]. The Unix socket ([`Pg::socket_conn`]) takes `postgres`
    /// without a password and without TLS, for the test's own checks. `None` as
    /// [`Pg::start`].
    pub fn start_tls(password: &str) -> Option<Pg> {
        Pg::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Option<Pg> {
        let Some(bin) = find_bin() else {
            let msg = "PostgreSQL binaries (initdb, pg_ctl) not found in /usr/local/bin, \
                       /usr/lib/postgresql/*/bin or PATH; install PostgreSQL (apt-get install \
                       postgresql) to run the PostgreSQL discovery tests";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        };
        let as_postgres = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0)
            == 0;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("ensemble-pg-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let pg = Pg {
            dir,
            bin,
            port: free_port(),
            as_postgres,
            password: password.map(str::to_owned),
        };
        let mut initdb = pg.cmd("initdb");
        initdb.arg("-D").arg(pg.data()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        if let Some(password) = password {
            // The password reaches initdb in a file, never on its command line.
            let file = pg.dir.join("pwfile");
            std::fs::write(&file, format!("{password}\n")).unwrap();
            initdb.arg("--pwfile").arg(file);
        }
        pg.chown();
        pg.must(&mut initdb);
        let _ = std::fs::remove_file(pg.dir.join("pwfile"));
        if password.is_some() {
            pg.set_up_tls();
        }
        pg.start_server();
        Some(pg)
    }

    /// Gives the directory to user `postgres` when the server runs as it.
    fn chown(&self) {
        if self.as_postgres {
            self.must(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(&self.dir),
            );
        }
    }

    /// Writes the CA, the server's certificate and key, `ssl = on` and a pg_hba.conf with
    /// `hostssl` lines only.
    fn set_up_tls(&self) {
        use std::os::unix::fs::PermissionsExt;
        let ca = new_ca("Ensemble test CA");
        let (cert, key) = server_cert(&ca);
        std::fs::write(self.ca_file(), ca.pem()).unwrap();
        let data = self.data();
        std::fs::write(data.join("server.crt"), cert).unwrap();
        std::fs::write(data.join("server.key"), key).unwrap();
        // PostgreSQL refuses a key that others may read.
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        self.chown();
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn must(&self, cmd: &mut Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The server's own options.
    fn server_options(&self) -> String {
        format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.join("sock").display()
        )
    }

    /// Starts the server (again) on the same port and data.
    pub fn start_server(&self) {
        self.must(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("log"))
                .arg("-o")
                .arg(self.server_options())
                .args(["-w", "-t", "20", "start"]),
        );
    }

    /// Stops the server at once (connections are cut).
    pub fn stop_server(&self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// A URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL for the `postgres` database with the password (instances started with TLS),
    /// through `host`, with the query `params` (`sslmode=require`, ...).
    pub fn url_to(&self, host: &str, params: &str) -> String {
        let password = self.password.as_deref().unwrap_or_default();
        format!(
            "postgres://postgres:{password}@{host}:{}/postgres?{params}",
            self.port
        )
    }

    /// A `key=value` connection string through the Unix socket (no TLS, no password).
    pub fn socket_conn(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.join("sock").display(),
            self.port
        )
    }

    /// The PEM certificate of the CA that issued the server's (instances started with TLS).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
