//! Encryption and authentication of every frame after the handshake.
//!
//! Each direction of a connection has its own ChaCha20-Poly1305 key, derived from the cluster
//! secret, both handshake nonces and both names (so keys are fresh per connection and never
//! shared between directions), and a frame counter used as the nonce. A frame that was altered,
//! replayed, dropped or reordered fails to open, and the connection is closed.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// Bytes a sealed frame adds to its plaintext (the Poly1305 tag).
pub const OVERHEAD: usize = 16;

/// A frame that failed to open.
#[derive(Debug, thiserror::Error)]
#[error("frame failed authentication (tampered, replayed, or not from the cluster)")]
pub struct OpenError;

/// One direction of a connection: its key and frame counter.
pub struct Direction {
    key: LessSafeKey,
    counter: u64,
}

/// The sending direction of a [`Session`].
pub type Sealer = Direction;
/// The receiving direction of a [`Session`].
pub type Opener = Direction;

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        Direction {
            key: LessSafeKey::new(key),
            counter: 0,
        }
    }

    /// The frame counter as the nonce: each is used once per key, by construction.
    fn nonce(&mut self) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `buf[start..]` in place and appends its tag.
    pub fn seal_in_place(&mut self, buf: &mut Vec<u8>, start: usize) {
        let nonce = self.nonce();
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf[start..])
            .expect("ChaCha20-Poly1305 encrypts any frame that fits in memory");
        buf.extend_from_slice(tag.as_ref());
    }

    /// Checks and decrypts the next frame in place; returns the plaintext's length (the
    /// plaintext is the front of `sealed`).
    pub fn open_in_place(&mut self, sealed: &mut [u8]) -> Result<usize, OpenError> {
        let nonce = self.nonce();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), sealed)
            .map_err(|_| OpenError)?;
        Ok(plain.len())
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
    #[cfg(test)]
    pub fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        self.send.seal_in_place(&mut buf, 0);
        buf
    }

    /// Checks and decrypts the next frame.
    #[cfg(test)]
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = sealed.to_vec();
        let n = self.recv.open_in_place(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The two directions apart, for a connection that writes from more than one task.
    pub fn into_halves(self) -> (Sealer, Opener) {
        (self.send, self.recv)
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

    /// The frames are RFC 8439 ChaCha20-Poly1305 with the counter as the nonce, byte for byte
    /// what nodes built with the earlier cipher crate sent (their output, recorded).
    #[test]
    fn frames_are_the_same_bytes_as_before() {
        let mut s = Session::new(&[1; 32], &[1; 32]);
        let want = [
            "64493eb483307aa7249d1becc3c1610ce302fce070ffa48340e485d375e1",
            "673ddd055b2a468079ab513b749c53139b2fb9bc72a236c1ac76569f9116",
        ];
        for w in want {
            let sealed = s.seal(b"ensemble frame");
            assert_eq!(hex::encode(&sealed), w);
            assert_eq!(s.open(&sealed).unwrap(), b"ensemble frame");
        }
    }

    #[test]
    fn sealing_in_place_gives_the_same_frame() {
        let ((a, _), (mut same_keys, _), (_, b)) = (pair(), pair(), pair());
        let ((mut sealer, _), (_, mut opener)) = (a.into_halves(), b.into_halves());
        let mut buf = b"head".to_vec();
        buf.extend_from_slice(b"payload");
        sealer.seal_in_place(&mut buf, 4);
        assert_eq!(&buf[4..], &same_keys.seal(b"payload")[..]);
        let n = opener.open_in_place(&mut buf[4..]).unwrap();
        assert_eq!(&buf[4..4 + n], b"payload");
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
