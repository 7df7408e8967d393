//! The cluster keys a node holds: one primary key, which it dials with, and any number of
//! others (at most [`MAX_KEYS`] in all) that it accepts when dialled. A cluster rotates its key
//! by installing the new one everywhere, making it the primary everywhere, then removing the
//! old one (see docs/SECURITY.md).

use std::sync::{Arc, RwLock};

use ensemble_proto::wire::MAX_HANDSHAKE_KEYS;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::Error;
use crate::secret::Secret;

/// Most keys a keyring holds (the handshake offers one exchange per key).
pub const MAX_KEYS: usize = MAX_HANDSHAKE_KEYS;

/// A node's cluster keys, primary first.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Secret>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prints: Vec<String> = self.keys.iter().map(fingerprint).collect();
        f.debug_struct("Keyring").field("keys", &prints).finish()
    }
}

/// A node's keyring as its parts share it: the handshakes read it, key operations change it
/// (from this node's API or another node's request), and every change is published.
pub(crate) struct KeyringCell {
    ring: RwLock<Keyring>,
    changes: watch::Sender<Keyring>,
}

/// The keyring cell, shared.
pub(crate) type SharedKeyring = Arc<KeyringCell>;

impl std::fmt::Debug for KeyringCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl KeyringCell {
    pub(crate) fn new(ring: Keyring) -> SharedKeyring {
        let (changes, _) = watch::channel(ring.clone());
        Arc::new(KeyringCell {
            ring: RwLock::new(ring),
            changes,
        })
    }

    /// The keys as they are now.
    pub(crate) fn snapshot(&self) -> Keyring {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the keyring with `f` (nothing changes if it fails) and publishes the result.
    pub(crate) fn update<T>(
        &self,
        f: impl FnOnce(&mut Keyring) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let mut next = ring.clone();
        let out = f(&mut next)?;
        *ring = next;
        self.changes.send_replace(ring.clone());
        Ok(out)
    }

    /// Every change from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Keyring> {
        self.changes.subscribe()
    }
}

impl Keyring {
    /// A keyring holding `primary` only.
    pub fn new(primary: Secret) -> Self {
        Keyring {
            keys: vec![primary],
        }
    }

    /// A keyring with `primary` and the other accepted keys `others` (duplicates dropped).
    pub fn with(primary: Secret, others: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        let mut ring = Keyring::new(primary);
        for k in others {
            ring.install(k)?;
        }
        Ok(ring)
    }

    /// The key this node dials with.
    pub fn primary(&self) -> &Secret {
        &self.keys[0]
    }

    /// Every key this node accepts, primary first.
    pub fn keys(&self) -> &[Secret] {
        &self.keys
    }

    /// Each key's fingerprint, and whether it is the primary, primary first.
    pub fn fingerprints(&self) -> Vec<(String, bool)> {
        let keys = self.keys.iter().enumerate();
        keys.map(|(i, k)| (fingerprint(k), i == 0)).collect()
    }

    /// Accepts `key` too (nothing changes if it is installed already).
    pub fn install(&mut self, key: Secret) -> Result<(), Error> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(Error::Config(format!(
                "the keyring holds {MAX_KEYS} keys already; remove one first"
            )));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Dials with `key` from now on; it must be installed.
    pub fn use_key(&mut self, key: &Secret) -> Result<(), Error> {
        let Some(at) = self.keys.iter().position(|k| k == key) else {
            return Err(Error::Config(format!(
                "key {} is not installed; install it first",
                fingerprint(key)
            )));
        };
        self.keys.swap(0, at);
        Ok(())
    }

    /// Stops accepting `key`. The primary key cannot be removed: make another key the primary
    /// first.
    pub fn remove(&mut self, key: &Secret) -> Result<(), Error> {
        if self.primary() == key {
            return Err(Error::Config(format!(
                "key {} is the primary key; use another key first",
                fingerprint(key)
            )));
        }
        self.keys.retain(|k| k != key);
        Ok(())
    }
}

/// A short, stable name of a key for operators (the first 8 bytes of its SHA-256, in hex). It
/// is shown only to authenticated callers; a key of [`crate::MIN_SECRET_BITS`] bits or more
/// cannot be guessed from it.
pub fn fingerprint(key: &Secret) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Secret {
        Secret::new(hex::encode(Sha256::digest([n]))).unwrap()
    }

    #[test]
    fn install_use_remove() {
        let mut ring = Keyring::new(key(1));
        ring.install(key(2)).unwrap();
        ring.install(key(2)).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert!(ring.remove(&key(1)).is_err(), "the primary stays");
        assert!(ring.use_key(&key(3)).is_err(), "not installed");
        ring.use_key(&key(2)).unwrap();
        assert_eq!(ring.primary(), &key(2));
        ring.remove(&key(1)).unwrap();
        assert_eq!(ring.keys(), &[key(2)]);
        for n in 3..(2 + MAX_KEYS as u8) {
            ring.install(key(n)).unwrap();
        }
        assert!(ring.install(key(99)).is_err(), "full");
        assert_ne!(fingerprint(&key(1)), fingerprint(&key(2)));
        let shown = format!("{ring:?}");
        assert!(shown.contains(&fingerprint(&key(2))));
        let text = String::from_utf8(key(2).as_bytes().to_vec()).unwrap();
        assert!(!shown.contains(&text), "Debug shows fingerprints only");
    }
}
