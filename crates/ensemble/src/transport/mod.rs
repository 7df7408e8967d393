//! TCP transport: length-delimited frames, the authenticated handshake, connection tasks.

pub mod conn;
pub mod handshake;
pub(crate) mod outbox;
pub mod session;
pub(crate) mod shared_ops;

use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

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
