//! The shared cluster secret that authenticates nodes to each other.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::error::Error;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Fewest bits a secret must carry by [`estimated_bits`].
pub const MIN_SECRET_BITS: f64 = 128.0;

/// A cluster secret (a key of the keyring). It never crosses the wire: the handshake is a
/// password-authenticated key exchange, so nothing it sends lets anyone test guesses of the
/// secret offline. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from bytes: at least [`MIN_SECRET_LEN`] of them, carrying at least
    /// [`MIN_SECRET_BITS`] by [`estimated_bits`]. `ensemble keygen` prints one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(Error::Config(format!(
                "the cluster secret is {} bytes long; use at least {MIN_SECRET_LEN} \
                 (`ensemble keygen` prints a good one)",
                bytes.len()
            )));
        }
        let bits = estimated_bits(&bytes);
        if bits < MIN_SECRET_BITS {
            return Err(Error::Config(format!(
                "the cluster secret is too weak: about {bits:.0} bits, at least \
                 {MIN_SECRET_BITS:.0} are needed; `ensemble keygen` prints a good one"
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

    /// Reads a secret from a file (surrounding whitespace ignored). A file that the group or
    /// others may read is used, with a warning in the log.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Secret {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        warn_if_readable_by_others(path);
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

    /// The secret itself, for storing it (a keyring file, say). Never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// A simple estimate of the bits a secret carries: the length of its shortest repeating unit
/// times the bits of one character drawn from the classes it uses (hex digits alone: 4 bits;
/// otherwise lowercase 26, uppercase 26, digits 10, any other byte 33). Random 32 bytes in hex
/// carry 256; `passwordpassword` about 38.
pub fn estimated_bits(secret: &[u8]) -> f64 {
    let period = (1..=secret.len())
        .find(|p| secret.len().is_multiple_of(*p) && secret.chunks(*p).all(|c| c == &secret[..*p]))
        .unwrap_or(secret.len());
    let hex = secret
        .iter()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let alphabet = if hex {
        16
    } else {
        let has = |f: fn(&u8) -> bool| secret.iter().any(f);
        let mut n = 0;
        if has(u8::is_ascii_lowercase) {
            n += 26;
        }
        if has(u8::is_ascii_uppercase) {
            n += 26;
        }
        if has(u8::is_ascii_digit) {
            n += 10;
        }
        if has(|b| !b.is_ascii_alphanumeric()) {
            n += 33;
        }
        n.max(2)
    };
    period as f64 * f64::from(alphabet).log2()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the secret file {} can be read by other users (mode {:o}); \
                 restrict it with `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

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
    fn short_and_weak_secrets_are_refused_naming_keygen() {
        assert!(Secret::new("short").is_err());
        for weak in [
            "passwordpassword",
            "0123456789abcdef",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let e = Secret::new(weak).unwrap_err().to_string();
            assert!(
                e.contains("too weak") && e.contains("ensemble keygen"),
                "{weak}: {e}"
            );
        }
        assert!(estimated_bits(b"passwordpassword") < 40.0);
        assert_eq!(
            estimated_bits(&[b'z'; 40]),
            26f64.log2(),
            "one repeated letter"
        );
        // What `ensemble keygen` prints, and the secrets of the examples and tests, pass.
        assert_eq!(estimated_bits(Secret::generate().as_bytes()), 256.0);
        for good in [
            "a-long-shared-cluster-secret",
            "test-secret-0123456789abcdef",
        ] {
            assert!(Secret::new(good).is_ok(), "{good}");
        }
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
