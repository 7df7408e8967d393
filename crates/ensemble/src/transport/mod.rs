//! TCP transport: length-delimited frames, the authenticated handshake, connection tasks.
//!
//! The connection tasks report to their owner (the driver) with [`TransportEvent`]s, sent into
//! its channel as whatever message type wraps them ([`Inbox`]), and ask it through [`CutOff`]
//! whether fault injection cuts a peer off: the transport knows nothing of the driver.

pub(crate) mod accept;
pub mod conn;
pub mod handshake;
pub(crate) mod outbox;
pub mod session;
pub(crate) mod shared_ops;

use std::net::SocketAddr;

use ensemble_proto::wire::{Message, PeerInfo};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use conn::ConnHandle;
use handshake::HandshakeError;

/// What the connection and dial tasks report.
pub(crate) enum TransportEvent {
    /// A connection completed its handshake.
    ConnUp {
        conn: ConnHandle,
        peer: PeerInfo,
        dialed: Option<SocketAddr>,
    },
    /// A connection closed.
    ConnDown { id: u64, name: String },
    /// A frame arrived.
    Inbound { from: String, msg: Message },
    /// A dial failed. The error tells why: nothing listens there (refused or reset before the
    /// handshake: [`HandshakeError::no_listener`]), a timeout, a handshake either side refused
    /// ([`HandshakeError::is_refusal`]), or a connection lost during the handshake.
    DialFailed {
        addr: SocketAddr,
        error: HandshakeError,
    },
}

/// The message type of the channel transport events go to (the driver's inbox): any type a
/// [`TransportEvent`] converts into. The tasks send each event straight into that channel, so
/// the transport does not name the driver's messages, and an inbound frame costs no extra
/// channel hop or allocation.
pub(crate) trait Inbox: From<TransportEvent> + Send + 'static {}

impl<M: From<TransportEvent> + Send + 'static> Inbox for M {}

/// Fault injection as the connection tasks see it: whether a peer is cut off from this node.
/// The driver's fault injection answers; a handshake from a name cut off is dropped mid-way,
/// as a real partition would drop it, so the dialer never sees a connection succeed.
pub(crate) trait CutOff: Send + Sync + std::fmt::Debug {
    /// True if the node named `name` is cut off from this one.
    fn is_cut_off(&self, name: &str) -> bool;
}

/// A TCP stream cut into length-prefixed frames (4-byte big-endian length).
pub type FramedStream = Framed<TcpStream, LengthDelimitedCodec>;

/// Largest frame accepted before the handshake completed: an unauthenticated peer cannot make
/// this node reserve more.
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// Frames `stream` for the handshake: frames above [`HANDSHAKE_MAX_FRAME`] close it. Call
/// [`authenticated`] once the handshake succeeded.
pub fn framed(stream: TcpStream) -> FramedStream {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(HANDSHAKE_MAX_FRAME)
        .new_codec();
    Framed::new(stream, codec)
}

/// Raises the frame limit to `max_frame` after a successful handshake.
pub fn authenticated(stream: &mut FramedStream, max_frame: usize) {
    stream.codec_mut().set_max_frame_length(max_frame);
}
