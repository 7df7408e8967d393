//! A throwaway PostgreSQL for tests: `initdb` in a temp dir, `pg_ctl start` on a free loopback
//! port, trust authentication, stopped and removed on drop (also when a test panics).
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
        };
        if as_postgres {
            pg.must(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(&pg.dir),
            );
        }
        pg.must(pg.cmd("initdb").arg("-D").arg(pg.data()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        pg.start_server();
        Some(pg)
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
