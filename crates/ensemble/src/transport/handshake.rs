//! The handshake: protocol version, cluster name, and mutual proof of the cluster secret.
//!
//! ```text
//! dialer                                   acceptor
//!   Hello { versions, cluster, me, nonce_d } ->
//!                                          <- Welcome { version, me, nonce_a, proof_a }
//!   Auth { proof_d }                         ->          (or Reject on a bad proof_a)
//!                                          <- Accepted   (or Reject on a bad proof_d)
//! ```
//! Each proof is HMAC-SHA256 under the secret over a role label, the cluster name, both nonces
//! and both names, so it cannot be replayed, reflected, or computed without the secret. The
//! secret itself never crosses the wire. The same construction with two other labels gives the
//! connection's two session keys (one per direction), which encrypt and authenticate every
//! later frame (see `session`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::wire::{
    self, Auth, Frame, Hello, PeerInfo, Reject, Welcome, MAGIC, MIN_PROTOCOL_VERSION, NONCE_LEN,
    PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::session::Session;
use super::{CutOff, FramedStream};
use crate::secret::Secret;

/// What both sides need for a handshake.
#[derive(Debug, Clone)]
pub struct Params {
    /// Cluster name.
    pub cluster: String,
    /// Cluster secret.
    pub secret: Secret,
    /// This node.
    pub me: PeerInfo,
    /// Fault injection: dials from a name it cuts off are dropped mid-handshake, as a real
    /// partition would drop them, so they never see a connection succeed.
    pub cut_off: Arc<dyn CutOff>,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or closed.
    #[error("connection lost during handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The other side sent bytes that are not a frame.
    #[error("{0} (not an Ensemble node, or a corrupted stream)")]
    Malformed(#[from] wire::DecodeError),
    /// The other side sent a frame out of order.
    #[error("unexpected {0} frame during handshake")]
    Unexpected(&'static str),
    /// The other side closed the connection.
    #[error("connection closed during handshake")]
    Closed,
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The other side refused us.
    #[error("refused by the other side: {}", describe(.0))]
    RefusedBy(Reject),
    /// We refused the other side.
    #[error("refused: {}", describe(.0))]
    Refused(Reject),
}

impl HandshakeError {
    /// True when the process at the address is gone: nothing listens (the connection was
    /// refused), or the socket was reset before the handshake (a dial racing the process's
    /// death). Handshake refusals are messages, never resets.
    pub fn no_listener(&self) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
        matches!(self, HandshakeError::Io(e) if matches!(e.kind(), ConnectionRefused | ConnectionReset))
    }

    /// True for failures that a configuration change fixes (secret, cluster, version, name).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            HandshakeError::RefusedBy(_) | HandshakeError::Refused(_)
        )
    }
}

/// A readable reason, with the fix.
fn describe(r: &Reject) -> String {
    match r {
        Reject::Version { min, max } => format!(
            "no common protocol version (one side speaks {min}..={max}, this build \
             {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}); upgrade the older node"
        ),
        Reject::Cluster { expected } => format!(
            "cluster name mismatch (one side is in cluster {expected:?}); set the same --cluster"
        ),
        Reject::Secret => "cluster secret mismatch; give both nodes the same secret \
                           (--secret-file, ENSEMBLE_SECRET or secret_file in the config)"
            .into(),
        Reject::Name(n) => format!("member name {n:?} is not allowed here (already in use)"),
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

/// The MAC of one side's proof, before finalisation.
fn mac(secret: &Secret, role: &[u8], cluster: &str, nonces: Nonces, names: Names) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    let parts = [
        role,
        cluster.as_bytes(),
        nonces.0,
        nonces.1,
        names.0.as_bytes(),
        names.1.as_bytes(),
    ];
    for part in parts {
        // Length-prefixed, so that no two different inputs give the same byte string.
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// (dialer nonce, acceptor nonce).
type Nonces<'a> = (&'a [u8], &'a [u8]);
/// (dialer name, acceptor name).
type Names<'a> = (&'a str, &'a str);

fn proof(secret: &Secret, role: &[u8], cluster: &str, nonces: Nonces, names: Names) -> Vec<u8> {
    mac(secret, role, cluster, nonces, names)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks a proof in constant time.
fn verify(
    secret: &Secret,
    role: &[u8],
    cluster: &str,
    nonces: Nonces,
    names: Names,
    got: &[u8],
) -> bool {
    mac(secret, role, cluster, nonces, names)
        .verify_slice(got)
        .is_ok()
}

const DIALER: &[u8] = b"ensemble/1 dialer";
const ACCEPTOR: &[u8] = b"ensemble/1 acceptor";
const KEY_TO_ACCEPTOR: &[u8] = b"ensemble/1 key dialer->acceptor";
const KEY_TO_DIALER: &[u8] = b"ensemble/1 key acceptor->dialer";

/// The session of a completed handshake, seen from the dialer (`dialer == true`) or acceptor.
fn session(p: &Params, nonces: Nonces, names: Names, dialer: bool) -> Session {
    let key = |label: &[u8]| -> [u8; 32] {
        mac(&p.secret, label, &p.cluster, nonces, names)
            .finalize()
            .into_bytes()
            .into()
    };
    let (to_acceptor, to_dialer) = (key(KEY_TO_ACCEPTOR), key(KEY_TO_DIALER));
    if dialer {
        Session::new(&to_acceptor, &to_dialer)
    } else {
        Session::new(&to_dialer, &to_acceptor)
    }
}

/// What a successful handshake gives: the peer, the agreed version, the session.
pub type Established = (PeerInfo, u16, Session);

async fn send(stream: &mut FramedStream, frame: Frame) -> Result<(), HandshakeError> {
    stream.send(Bytes::from(wire::encode(&frame))).await?;
    Ok(())
}

async fn recv(stream: &mut FramedStream) -> Result<Frame, HandshakeError> {
    match stream.next().await {
        Some(Ok(bytes)) => Ok(wire::decode(&bytes)?),
        Some(Err(e)) => Err(e.into()),
        None => Err(HandshakeError::Closed),
    }
}

async fn refuse(stream: &mut FramedStream, reason: Reject) -> HandshakeError {
    let _ = send(stream, Frame::Reject(reason.clone())).await;
    HandshakeError::Refused(reason)
}

/// Runs the dialer's side; returns the acceptor and the agreed version.
pub async fn dial(
    stream: &mut FramedStream,
    p: &Params,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    tokio::time::timeout(timeout, dial_inner(stream, p))
        .await
        .unwrap_or(Err(HandshakeError::Timeout))
}

async fn dial_inner(stream: &mut FramedStream, p: &Params) -> Result<Established, HandshakeError> {
    let my_nonce = nonce();
    let hello = Hello {
        magic: MAGIC,
        min_version: MIN_PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        cluster: p.cluster.clone(),
        peer: p.me.clone(),
        nonce: my_nonce,
    };
    send(stream, Frame::Hello(hello)).await?;
    let welcome = match recv(stream).await? {
        Frame::Welcome(w) => w,
        Frame::Reject(r) => return Err(HandshakeError::RefusedBy(r)),
        _ => return Err(HandshakeError::Unexpected("non-welcome")),
    };
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&welcome.version) {
        let (min, max) = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
        return Err(refuse(stream, Reject::Version { min, max }).await);
    }
    let nonces = (&my_nonce[..], &welcome.nonce[..]);
    let names = (p.me.name.as_str(), welcome.peer.name.as_str());
    if !verify(
        &p.secret,
        ACCEPTOR,
        &p.cluster,
        nonces,
        names,
        &welcome.proof,
    ) {
        return Err(refuse(stream, Reject::Secret).await);
    }
    let proof = proof(&p.secret, DIALER, &p.cluster, nonces, names);
    send(stream, Frame::Auth(Auth { proof })).await?;
    match recv(stream).await? {
        Frame::Accepted => {
            let session = session(p, nonces, names, true);
            Ok((welcome.peer, welcome.version, session))
        }
        Frame::Reject(r) => Err(HandshakeError::RefusedBy(r)),
        _ => Err(HandshakeError::Unexpected("non-accepted")),
    }
}

/// Runs the acceptor's side; returns the dialer and the agreed version.
pub async fn accept(
    stream: &mut FramedStream,
    p: &Params,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    tokio::time::timeout(timeout, accept_inner(stream, p))
        .await
        .unwrap_or(Err(HandshakeError::Timeout))
}

async fn accept_inner(
    stream: &mut FramedStream,
    p: &Params,
) -> Result<Established, HandshakeError> {
    let hello = match recv(stream).await? {
        Frame::Hello(h) if h.magic == MAGIC => h,
        _ => return Err(HandshakeError::Unexpected("non-hello")),
    };
    let version = hello.max_version.min(PROTOCOL_VERSION);
    if version < hello.min_version || version < MIN_PROTOCOL_VERSION {
        let (min, max) = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
        return Err(refuse(stream, Reject::Version { min, max }).await);
    }
    if hello.cluster != p.cluster {
        let expected = p.cluster.clone();
        return Err(refuse(stream, Reject::Cluster { expected }).await);
    }
    if p.cut_off.is_cut_off(&hello.peer.name) {
        return Err(HandshakeError::Closed);
    }
    if hello.peer.name == p.me.name
        || ensemble_proto::member::validate_name(&hello.peer.name).is_err()
    {
        return Err(refuse(stream, Reject::Name(hello.peer.name.clone())).await);
    }
    let my_nonce = nonce();
    let nonces = (&hello.nonce[..], &my_nonce[..]);
    let names = (hello.peer.name.as_str(), p.me.name.as_str());
    let welcome = Welcome {
        version,
        peer: p.me.clone(),
        nonce: my_nonce,
        proof: proof(&p.secret, ACCEPTOR, &p.cluster, nonces, names),
    };
    send(stream, Frame::Welcome(welcome)).await?;
    let auth = match recv(stream).await? {
        Frame::Auth(a) => a,
        Frame::Reject(r) => return Err(HandshakeError::RefusedBy(r)),
        _ => return Err(HandshakeError::Unexpected("non-auth")),
    };
    if !verify(&p.secret, DIALER, &p.cluster, nonces, names, &auth.proof) {
        return Err(refuse(stream, Reject::Secret).await);
    }
    send(stream, Frame::Accepted).await?;
    let session = session(p, nonces, names, false);
    Ok((hello.peer, version, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_or_reset_dial_means_the_process_is_gone() {
        let io = |k| HandshakeError::Io(std::io::Error::from(k));
        assert!(io(std::io::ErrorKind::ConnectionRefused).no_listener());
        assert!(io(std::io::ErrorKind::ConnectionReset).no_listener());
        assert!(!io(std::io::ErrorKind::TimedOut).no_listener());
        assert!(!HandshakeError::Timeout.no_listener());
        assert!(!HandshakeError::Closed.no_listener());
        assert!(!HandshakeError::RefusedBy(Reject::Secret).no_listener());
    }
}
