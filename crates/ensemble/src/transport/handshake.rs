//! The handshake (protocol version 4): versions, then a password-authenticated key exchange
//! under the cluster key, combined with an ephemeral Diffie-Hellman exchange and bound to the
//! whole transcript.
//!
//! ```text
//! dialer                                        acceptor
//!   Hello { versions, cluster, me, A, e_d }  ->
//!                                           <-  Welcome { version, me, [B_1..B_n], e_a,
//!                                                         [confirm_a_1..confirm_a_n] }
//!   Auth { confirm_d }                       ->   (or Reject::Auth: no B_i matched)
//!                                           <-  Accepted (or Reject::Auth / Reject::Name)
//! ```
//!
//! - `A` is the dialer's SPAKE2 message (side A) under its primary key, `B_i` the acceptor's
//!   (side B) under each key of its keyring; the SPAKE2 identities carry the cluster name, so
//!   nodes of different clusters never agree on a key. SPAKE2 gives each side the same key
//!   `K_i` only if both used the same password: someone who does not know the key learns
//!   nothing that lets it test guesses offline, and each handshake it runs is one guess.
//! - `e_d`, `e_a` are ephemeral X25519 keys; their shared secret `dh` makes the session keys
//!   unrecoverable from a recording even by someone who later learns the cluster key (forward
//!   secrecy; SPAKE2's own exchange is ephemeral too).
//! - The transcript hash `th` covers the `Hello` exactly as sent and everything of the
//!   `Welcome` but the confirmations (versions, magic, cluster, both peers' full info, every
//!   exchange message). HKDF-SHA256 with salt `th` over `K_i || dh` gives four keys: the two
//!   confirmations and the two session keys (one per direction). Any change to any field
//!   changes every one of them, and the handshake fails.
//! - The dialer checks the acceptor's confirmations against its own `K_i`s; one matching tells
//!   it which key the acceptor shares, and it answers with its own confirmation. Every failure
//!   is the same `Reject::Auth`, whatever the cause (another key, another cluster, a changed
//!   message); the acceptor logs the cause. The name check comes after the confirmation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::wire::{
    self, Auth, Frame, Hello, PeerInfo, Reject, Welcome, WelcomeCore, KEY_LEN, MAGIC,
    MAX_HANDSHAKE_KEYS, MAX_PAKE_LEN, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::session::Session;
use super::{CutOff, FramedStream};
use crate::keyring::SharedKeyring;
use crate::secret::Secret;

/// What both sides need for a handshake.
#[derive(Debug, Clone)]
pub struct Params {
    /// Cluster name.
    pub cluster: String,
    /// The keys this node holds: it dials with the primary and accepts any.
    pub keyring: SharedKeyring,
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
    /// The other side sent a frame out of order, or one out of bounds.
    #[error("unexpected {0} during handshake")]
    Unexpected(&'static str),
    /// The other side closed the connection.
    #[error("connection closed during handshake")]
    Closed,
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// An accepted connection sent no first frame in time.
    #[error("no hello within {0:?}")]
    NoHello(Duration),
    /// The other side refused us.
    #[error("refused by the other side: {}", describe(.0))]
    RefusedBy(Reject),
    /// We refused the other side.
    #[error("refused: {}", describe(.0))]
    Refused(Reject),
    /// The key exchange failed (each side refuses the other with `Reject::Auth`), with what
    /// this side can tell of why.
    #[error("the key exchange with {peer} failed: {why}")]
    KeyExchange {
        /// The other node's name (as it says).
        peer: String,
        /// What this side can tell.
        why: String,
    },
}

impl HandshakeError {
    /// True when the process at the address is gone: nothing listens (the connection was
    /// refused), or the socket was reset before the handshake (a dial racing the process's
    /// death). Handshake refusals are messages, never resets.
    pub fn no_listener(&self) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
        matches!(self, HandshakeError::Io(e) if matches!(e.kind(), ConnectionRefused | ConnectionReset))
    }

    /// The reason as a label value of `ensemble_handshakes_failed_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            _ if self.no_listener() => "no_listener",
            HandshakeError::Timeout | HandshakeError::NoHello(_) => "timeout",
            HandshakeError::RefusedBy(_) => "refused_by_peer",
            HandshakeError::Refused(_) | HandshakeError::KeyExchange { .. } => "refused",
            HandshakeError::Malformed(_) | HandshakeError::Unexpected(_) => "malformed",
            HandshakeError::Io(_) | HandshakeError::Closed => "error",
        }
    }

    /// True for failures that a configuration change fixes (key, cluster, version, name).
    pub fn is_refusal(&self) -> bool {
        self.refusal().is_some()
    }
}

/// Why a handshake that reached another node was refused, by kind (either side may have
/// refused; the dialer cannot tell a wrong key from another cluster name, by design).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key exchange failed: no common cluster key, or another cluster name.
    Key,
    /// No common protocol version.
    Version,
    /// The member name was refused (in use, or not allowed).
    Name,
}

impl HandshakeError {
    /// The kind of refusal, for failures [`HandshakeError::is_refusal`] counts.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            HandshakeError::RefusedBy(r) | HandshakeError::Refused(r) => Some(match r {
                Reject::Auth => Refusal::Key,
                Reject::Version { .. } => Refusal::Version,
                Reject::Name(_) => Refusal::Name,
            }),
            HandshakeError::KeyExchange { .. } => Some(Refusal::Key),
            _ => None,
        }
    }
}

/// A readable reason, with the fix.
fn describe(r: &Reject) -> String {
    match r {
        Reject::Version { min, max } => format!(
            "no common protocol version (one side speaks {min}..={max}, this build \
             {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}); upgrade the older node"
        ),
        Reject::Auth => "the key exchange failed: the nodes hold no common cluster key \
                         (--secret-file, ENSEMBLE_SECRET, the keyring) or are in different \
                         clusters (--cluster); the accepting node's log says which"
            .into(),
        Reject::Name(n) => format!("member name {n:?} is not allowed here (already in use)"),
    }
}

const ID_DIALER: &str = "ensemble/4 dialer ";
const ID_ACCEPTOR: &str = "ensemble/4 acceptor ";
const TRANSCRIPT: &[u8] = b"ensemble/4 transcript";
const CONFIRM_ACCEPTOR: &[u8] = b"ensemble/4 confirm acceptor";
const CONFIRM_DIALER: &[u8] = b"ensemble/4 confirm dialer";
const KEY_TO_ACCEPTOR: &[u8] = b"ensemble/4 key dialer->acceptor";
const KEY_TO_DIALER: &[u8] = b"ensemble/4 key acceptor->dialer";

/// The SPAKE2 identities of the two sides, which carry the cluster name.
fn identities(cluster: &str) -> (Identity, Identity) {
    let a = Identity::new(format!("{ID_DIALER}{cluster}").as_bytes());
    let b = Identity::new(format!("{ID_ACCEPTOR}{cluster}").as_bytes());
    (a, b)
}

/// The dialer's SPAKE2 state and message; the same `seed` gives the same ones, so that the
/// dialer can finish the exchange against each of the acceptor's messages.
fn dialer_pake(key: &Secret, cluster: &str, seed: [u8; 32]) -> (Spake2<Ed25519Group>, Vec<u8>) {
    let (a, b) = identities(cluster);
    let password = Password::new(key.as_bytes());
    Spake2::<Ed25519Group>::start_a_with_rng(&password, &a, &b, StdRng::from_seed(seed))
}

fn acceptor_pake(key: &Secret, cluster: &str) -> (Spake2<Ed25519Group>, Vec<u8>) {
    let (a, b) = identities(cluster);
    let password = Password::new(key.as_bytes());
    Spake2::<Ed25519Group>::start_b_with_rng(&password, &a, &b, StdRng::from_entropy())
}

/// The hash every derived key is bound to: the `Hello` as sent and the `Welcome` but its
/// confirmations.
fn transcript(hello: &[u8], core: &WelcomeCore) -> [u8; 32] {
    let core = postcard::to_stdvec(core).expect("a welcome encodes");
    let mut h = Sha256::new();
    for part in [TRANSCRIPT, hello, &core] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// What one key exchange gives.
struct Derived {
    confirm_acceptor: [u8; KEY_LEN],
    confirm_dialer: [u8; KEY_LEN],
    to_acceptor: [u8; KEY_LEN],
    to_dialer: [u8; KEY_LEN],
}

fn derive(pake_key: &[u8], dh: &[u8; KEY_LEN], th: &[u8; 32]) -> Derived {
    let mut ikm = Vec::with_capacity(pake_key.len() + dh.len());
    ikm.extend_from_slice(pake_key);
    ikm.extend_from_slice(dh);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, th).extract(&ikm);
    let expand = |label: &[u8]| -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        prk.expand(&[label], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    };
    Derived {
        confirm_acceptor: expand(CONFIRM_ACCEPTOR),
        confirm_dialer: expand(CONFIRM_DIALER),
        to_acceptor: expand(KEY_TO_ACCEPTOR),
        to_dialer: expand(KEY_TO_DIALER),
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An ephemeral X25519 key pair.
fn ephemeral() -> (EphemeralPrivateKey, [u8; KEY_LEN]) {
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&X25519, &rng).expect("the system RNG works");
    let public = private.compute_public_key().expect("an X25519 public key");
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(public.as_ref());
    (private, out)
}

/// The X25519 shared secret with `peer`, or None for an invalid public key.
fn agree(private: EphemeralPrivateKey, peer: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
    let peer = UnparsedPublicKey::new(&X25519, peer);
    agreement::agree_ephemeral(private, &peer, |shared| {
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(shared);
        out
    })
    .ok()
}

/// What a successful handshake gives: the peer, the agreed version, the session.
pub type Established = (PeerInfo, u16, Session);

async fn send(stream: &mut FramedStream, frame: Frame) -> Result<(), HandshakeError> {
    send_bytes(stream, wire::encode(&frame)).await
}

async fn send_bytes(stream: &mut FramedStream, bytes: Vec<u8>) -> Result<(), HandshakeError> {
    stream.send(Bytes::from(bytes)).await?;
    Ok(())
}

async fn recv_bytes(stream: &mut FramedStream) -> Result<bytes::BytesMut, HandshakeError> {
    match stream.next().await {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(e.into()),
        None => Err(HandshakeError::Closed),
    }
}

async fn recv(stream: &mut FramedStream) -> Result<Frame, HandshakeError> {
    Ok(wire::decode(&recv_bytes(stream).await?)?)
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
    let key = p.keyring.snapshot().primary().clone();
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let (first, pake) = dialer_pake(&key, &p.cluster, seed);
    let mut first = Some(first);
    let (private, public) = ephemeral();
    let hello = Hello {
        magic: MAGIC,
        min_version: MIN_PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        cluster: p.cluster.clone(),
        peer: p.me.clone(),
        pake,
        ephemeral: public,
    };
    let hello = wire::encode(&Frame::Hello(hello));
    send_bytes(stream, hello.clone()).await?;
    let welcome = match recv(stream).await? {
        Frame::Welcome(w) => w,
        Frame::Reject(r) => return Err(HandshakeError::RefusedBy(r)),
        _ => return Err(HandshakeError::Unexpected("frame instead of a welcome")),
    };
    let Welcome { core, confirms } = welcome;
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&core.version) {
        let (min, max) = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
        return Err(refuse(stream, Reject::Version { min, max }).await);
    }
    let shape = (1..=MAX_HANDSHAKE_KEYS).contains(&core.pakes.len())
        && confirms.len() == core.pakes.len()
        && core.pakes.iter().all(|m| m.len() <= MAX_PAKE_LEN);
    if !shape {
        return Err(HandshakeError::Unexpected("welcome out of bounds"));
    }
    let th = transcript(&hello, &core);
    let dh = agree(private, &core.ephemeral);
    // Every offered exchange is finished and checked, whichever matches.
    let mut matched = None;
    // The state is consumed by `finish`: the first exchange uses the one that made the hello,
    // the others restart it from the same seed.
    for (theirs, confirm) in core.pakes.iter().zip(&confirms) {
        let state = match first.take() {
            Some(state) => state,
            None => dialer_pake(&key, &p.cluster, seed).0,
        };
        let (Ok(k), Some(dh)) = (state.finish(theirs), dh.as_ref()) else {
            continue;
        };
        let d = derive(&k, dh, &th);
        if same(&d.confirm_acceptor, confirm) && matched.is_none() {
            matched = Some(d);
        }
    }
    let Some(d) = matched else {
        let _ = refuse(stream, Reject::Auth).await;
        return Err(HandshakeError::KeyExchange {
            peer: core.peer.name,
            why: "it holds none of this node's keys (give both the same secret, or install \
                  this node's key there), or it is in another cluster (--cluster), or the \
                  messages were changed on the way; its log says which"
                .into(),
        });
    };
    let auth = Auth {
        confirm: d.confirm_dialer,
    };
    send(stream, Frame::Auth(auth)).await?;
    match recv(stream).await? {
        Frame::Accepted => {
            let session = Session::new(&d.to_acceptor, &d.to_dialer);
            Ok((core.peer, core.version, session))
        }
        Frame::Reject(r) => Err(HandshakeError::RefusedBy(r)),
        _ => Err(HandshakeError::Unexpected("frame instead of accepted")),
    }
}

/// Runs the acceptor's side; returns the dialer and the agreed version. The dialer has
/// `deadlines.0` to send its first frame and `deadlines.1` for the whole handshake.
pub async fn accept(
    stream: &mut FramedStream,
    p: &Params,
    deadlines: (Duration, Duration),
) -> Result<Established, HandshakeError> {
    tokio::time::timeout(deadlines.1, accept_inner(stream, p, deadlines.0))
        .await
        .unwrap_or(Err(HandshakeError::Timeout))
}

async fn accept_inner(
    stream: &mut FramedStream,
    p: &Params,
    first_frame: Duration,
) -> Result<Established, HandshakeError> {
    let hello_bytes = tokio::time::timeout(first_frame, recv_bytes(stream))
        .await
        .map_err(|_| HandshakeError::NoHello(first_frame))??;
    let hello = match wire::decode(&hello_bytes)? {
        Frame::Hello(h) if h.magic == MAGIC => h,
        _ => return Err(HandshakeError::Unexpected("frame instead of a hello")),
    };
    let version = hello.max_version.min(PROTOCOL_VERSION);
    if version < hello.min_version || version < MIN_PROTOCOL_VERSION {
        let (min, max) = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
        return Err(refuse(stream, Reject::Version { min, max }).await);
    }
    if hello.pake.len() > MAX_PAKE_LEN {
        return Err(HandshakeError::Unexpected("hello out of bounds"));
    }
    if p.cut_off.is_cut_off(&hello.peer.name) {
        return Err(HandshakeError::Closed);
    }
    let keys: Vec<Secret> = {
        let ring = p.keyring.snapshot();
        ring.keys()
            .iter()
            .take(MAX_HANDSHAKE_KEYS)
            .cloned()
            .collect()
    };
    let (private, public) = ephemeral();
    let dh = agree(private, &hello.ephemeral);
    // One exchange per key, each finished with the dialer's message. A message that does not
    // finish (malformed) still gets an answer of the same shape, so the answer says nothing.
    let mut pakes = Vec::with_capacity(keys.len());
    let mut finished = Vec::with_capacity(keys.len());
    for key in &keys {
        let (state, msg) = acceptor_pake(key, &p.cluster);
        pakes.push(msg);
        finished.push(state.finish(&hello.pake).ok());
    }
    let core = WelcomeCore {
        version,
        peer: p.me.clone(),
        pakes,
        ephemeral: public,
    };
    let th = transcript(&hello_bytes, &core);
    let derived: Vec<Option<Derived>> = finished
        .iter()
        .map(|k| Some(derive(k.as_ref()?, dh.as_ref()?, &th)))
        .collect();
    let confirms = derived
        .iter()
        .map(|d| match d {
            Some(d) => d.confirm_acceptor,
            None => {
                let mut noise = [0u8; KEY_LEN];
                rand::thread_rng().fill_bytes(&mut noise);
                noise
            }
        })
        .collect();
    send(stream, Frame::Welcome(Welcome { core, confirms })).await?;
    let auth = match recv(stream).await? {
        Frame::Auth(a) => a,
        // The dialer found none of our keys: its reason is the same as ours.
        Frame::Reject(_) => {
            return Err(HandshakeError::KeyExchange {
                peer: hello.peer.name.clone(),
                why: why_not(p, &hello, keys.len()),
            });
        }
        _ => return Err(HandshakeError::Unexpected("frame instead of auth")),
    };
    let mut matched = None;
    for d in derived.into_iter().flatten() {
        if same(&d.confirm_dialer, &auth.confirm) && matched.is_none() {
            matched = Some(d);
        }
    }
    let Some(d) = matched else {
        let _ = refuse(stream, Reject::Auth).await;
        return Err(HandshakeError::KeyExchange {
            peer: hello.peer.name.clone(),
            why: why_not(p, &hello, keys.len()),
        });
    };
    if hello.peer.name == p.me.name
        || ensemble_proto::member::validate_name(&hello.peer.name).is_err()
    {
        return Err(refuse(stream, Reject::Name(hello.peer.name.clone())).await);
    }
    send(stream, Frame::Accepted).await?;
    let session = Session::new(&d.to_dialer, &d.to_acceptor);
    Ok((hello.peer, version, session))
}

/// Why a dialer's exchange matched none of this node's keys, as far as this node can tell
/// (for its own log only).
fn why_not(p: &Params, hello: &Hello, keys: usize) -> String {
    if hello.cluster != p.cluster {
        format!(
            "it says it is in cluster {:?}, this node is in {:?} (set the same --cluster)",
            hello.cluster, p.cluster
        )
    } else {
        format!(
            "its key is none of the {keys} keys of this node's keyring (give both the same \
             secret, or install its key), or the messages were changed on the way"
        )
    }
}

#[cfg(test)]
mod tests;
