//! The cluster keys on a [`Node`]: its keyring, and key operations on every live node at once
//! (install a key, make it the primary, remove one, list them), for rotating the cluster key
//! without a restart. See docs/SECURITY.md.

use std::time::Duration;

use tokio::sync::watch;

use crate::command::{Command, KeyCommand, KeyOp, KeyResponse};
use crate::error::Error;
use crate::keyring::Keyring;
use crate::node::Node;
use crate::secret::Secret;

/// How long a key operation waits for the other nodes' answers.
pub const KEY_TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    /// This node's keyring as it is now: the primary key it dials with, and every key it
    /// accepts.
    pub fn keyring(&self) -> Keyring {
        self.inner.keyring.snapshot()
    }

    /// Every change of this node's keyring, whoever made it (this node, or a key operation
    /// another node ran): for keeping a keyring file up to date.
    pub fn keyring_changes(&self) -> watch::Receiver<Keyring> {
        self.inner.keyring.subscribe()
    }

    /// Replaces this node's keyring, on this node only (a keyring file read again, say).
    /// Connections already open keep their keys; new handshakes use these.
    pub fn set_keyring(&self, keyring: Keyring) {
        let _ = self.inner.keyring.update(|r| {
            *r = keyring;
            Ok(())
        });
    }

    /// Each live node's keys, by fingerprint: how many nodes hold each, and how many dial
    /// with it.
    pub async fn list_keys(&self) -> Result<KeyResponse, Error> {
        self.key_op(KeyOp::List).await
    }

    /// Has every live node accept `key` too. The first step of a rotation.
    pub async fn install_key(&self, key: &Secret) -> Result<KeyResponse, Error> {
        self.key_op(KeyOp::Install(key.as_bytes().to_vec())).await
    }

    /// Has every live node dial with `key`, which they must hold already. The second step.
    pub async fn use_key(&self, key: &Secret) -> Result<KeyResponse, Error> {
        self.key_op(KeyOp::Use(key.as_bytes().to_vec())).await
    }

    /// Has every live node stop accepting `key`; a node whose primary key it is refuses. The
    /// last step, once no node dials with it.
    pub async fn remove_key(&self, key: &Secret) -> Result<KeyResponse, Error> {
        self.key_op(KeyOp::Remove(key.as_bytes().to_vec())).await
    }

    async fn key_op(&self, op: KeyOp) -> Result<KeyResponse, Error> {
        self.call(|reply| {
            Command::Keys(KeyCommand {
                op,
                timeout: KEY_TIMEOUT,
                reply,
            })
        })
        .await
    }
}
