//! TCP transport: length-delimited frames, the authenticated handshake, connection tasks.

pub mod conn;
pub mod handshake;

use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// A TCP stream cut into length-prefixed frames (4-byte big-endian length).
pub type FramedStream = Framed<TcpStream, LengthDelimitedCodec>;

/// Frames `stream`, refusing frames larger than `max_frame` bytes in both directions.
pub fn framed(stream: TcpStream, max_frame: usize) -> FramedStream {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
        .new_codec();
    Framed::new(stream, codec)
}
