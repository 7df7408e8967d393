//! The shared cluster secret that authenticates nodes to each other.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::error::Error;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A cluster secret. It never crosses the wire: the handshake proves knowledge of it with
/// HMAC-SHA256 over fresh nonces. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from bytes; at least [`MIN_SECRET_LEN`] of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(Error::Config(format!(
                "the cluster secret is {} bytes long; use at least {MIN_SECRET_LEN} \
                 (for example 32 random bytes, hex-encoded)",
                bytes.len()
            )));
        }
        Ok(Secret(bytes))
    }

    /// A fresh random secret, as 64 hex characters.
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        Secret(hex::encode(raw).into_bytes())
    }

    /// Reads a secret from a file (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Secret {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Secret::new(text.trim().as_bytes().to_vec()).map_err(|e| Error::Secret {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The per-user default secret file: `$ENSEMBLE_HOME/secret`, else `~/.ensemble/secret`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(home) = std::env::var_os("ENSEMBLE_HOME") {
            return Some(PathBuf::from(home).join("secret"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ensemble").join("secret"))
    }

    /// Reads the secret at `path`, creating it (mode 0600) with a random secret if missing,
    /// like Erlang's cookie. Returns the secret and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), Error> {
        if path.exists() {
            return Secret::from_file(path).map(|s| (s, false));
        }
        let err = |e: std::io::Error| Error::Secret {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let secret = Secret::generate();
        write_private(path, &secret.0).map_err(err)?;
        Ok((secret, true))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert!(Secret::new("short").is_err());
        assert!(Secret::new("0123456789abcdef").is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = Secret::new("0123456789abcdef-very-secret").unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn load_or_create_makes_a_private_file_once() {
        let dir = std::env::temp_dir().join(format!("ensemble-secret-{}", std::process::id()));
        let path = dir.join("secret");
        let _ = std::fs::remove_dir_all(&dir);
        let (a, created) = Secret::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = Secret::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
