//! Encryption and authentication of every frame after the handshake.
//!
//! Each direction of a connection has its own ChaCha20-Poly1305 key, derived from the cluster
//! secret, both handshake nonces and both names (so keys are fresh per connection and never
//! shared between directions), and a frame counter used as the nonce. A frame that was altered,
//! replayed, dropped or reordered fails to open, and the connection is closed.

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Bytes a sealed frame adds to its plaintext (the Poly1305 tag).
pub const OVERHEAD: usize = 16;

/// A frame that failed to open.
#[derive(Debug, thiserror::Error)]
#[error("frame failed authentication (tampered, replayed, or not from the cluster)")]
pub struct OpenError;

struct Direction {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        Direction {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            counter: 0,
        }
    }

    fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        *Nonce::from_slice(&n)
    }
}

/// The two directions of one connection.
pub struct Session {
    send: Direction,
    recv: Direction,
}

impl Session {
    /// A session that encrypts with `send_key` and decrypts with `recv_key`.
    pub fn new(send_key: &[u8; 32], recv_key: &[u8; 32]) -> Self {
        Session {
            send: Direction::new(send_key),
            recv: Direction::new(recv_key),
        }
    }

    /// Encrypts and authenticates one frame.
    pub fn seal(&mut self, plain: &[u8]) -> Bytes {
        let nonce = self.send.nonce();
        let sealed = self
            .send
            .cipher
            .encrypt(&nonce, plain)
            .expect("ChaCha20-Poly1305 encrypts any frame that fits in memory");
        Bytes::from(sealed)
    }

    /// Checks and decrypts the next frame.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let nonce = self.recv.nonce();
        self.recv
            .cipher
            .decrypt(&nonce, sealed)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Session, Session) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (Session::new(&a, &b), Session::new(&b, &a))
    }

    #[test]
    fn frames_round_trip_in_order() {
        let (mut dialer, mut acceptor) = pair();
        for i in 0..5u8 {
            let sealed = dialer.seal(&[i; 10]);
            assert_eq!(sealed.len(), 10 + OVERHEAD);
            assert_eq!(acceptor.open(&sealed).unwrap(), vec![i; 10]);
            let back = acceptor.seal(b"ack");
            assert_eq!(dialer.open(&back).unwrap(), b"ack");
        }
    }

    #[test]
    fn tampered_replayed_reordered_or_reflected_frames_fail() {
        let (mut dialer, mut acceptor) = pair();
        let mut first = dialer.seal(b"hello").to_vec();
        first[0] ^= 1;
        assert!(acceptor.open(&first).is_err(), "tampered");

        let (mut dialer, mut acceptor) = pair();
        let one = dialer.seal(b"one");
        let two = dialer.seal(b"two");
        assert!(acceptor.open(&two).is_err(), "reordered");

        let (mut dialer, mut acceptor) = pair();
        let one_again = dialer.seal(b"one");
        acceptor.open(&one_again).unwrap();
        assert!(acceptor.open(&one_again).is_err(), "replayed");

        let (mut dialer, _) = pair();
        assert!(dialer.open(&one).is_err(), "reflected back to its sender");
    }
}
