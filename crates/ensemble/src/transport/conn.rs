//! Connection tasks: dialling, accepting, and moving frames between a socket and the driver.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ensemble_proto::wire::{self, Frame, Message, PeerInfo};
use futures::StreamExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Framed, FramedParts, LengthDelimitedCodec};
use tracing::{debug, warn};

use super::handshake::{self, HandshakeError, Params};
use super::outbox::Outbox;
use super::session::{Opener, Session, OVERHEAD};
use super::shared_ops::SharedOps;
use super::{authenticated, framed, CutOff, FramedStream, Inbox, TransportEvent};
use crate::keyring::SharedKeyring;
use crate::metrics::{self, TransportMetrics};

/// Longest a write may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection this node closed is still read, waiting for the peer to close it too.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What connection tasks share with the driver (`M`: the driver's messages, see [`Inbox`]).
pub(crate) struct Shared<M> {
    pub cluster: String,
    /// The cluster keys (rotation changes them while connections come and go).
    pub keyring: SharedKeyring,
    /// This node as it announces itself; the driver updates the incarnation.
    pub me: watch::Receiver<PeerInfo>,
    pub max_frame: usize,
    pub dial_timeout: Duration,
    /// How long an accepted connection may take to send its first frame.
    pub first_frame_timeout: Duration,
    /// Most handshakes in progress at once from one source address.
    pub handshakes_per_address: usize,
    pub send_queue: usize,
    /// Most bytes (about) queued per connection, over every channel.
    pub send_queue_bytes: usize,
    /// Named messaging channels besides the default one (lane 0); lane i + 1 is channel i.
    pub channels: Vec<String>,
    /// Where transport events go (the driver's inbox).
    pub events: mpsc::Sender<M>,
    /// Whether fault injection cuts a peer off (the driver answers).
    pub cut_off: Arc<dyn CutOff>,
    /// Table writes encoded once for all the connections they go to.
    pub shared_ops: Arc<SharedOps>,
    /// Frames and bytes in and out.
    pub metrics: TransportMetrics,
    next_id: AtomicU64,
}

/// The driver's handle on an established connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    /// Unique per process.
    pub id: u64,
    /// Name of the node that dialled (for choosing between two connections to one peer).
    pub dialer: String,
    /// Messages to write, one queue per channel (lane 0: the default channel and every other
    /// protocol). Dropping them closes the connection once the queues are written.
    pub lanes: Vec<mpsc::Sender<Message>>,
    /// The write side, for small messages written at once when nothing is queued.
    pub outbox: Arc<Outbox>,
}

impl<M: Inbox> Shared<M> {
    pub fn new(
        cluster: String,
        keyring: SharedKeyring,
        me: watch::Receiver<PeerInfo>,
        config: &crate::Config,
        events: mpsc::Sender<M>,
        cut_off: Arc<dyn CutOff>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            cluster,
            keyring,
            me,
            max_frame: config.max_frame_size,
            dial_timeout: config.dial_timeout,
            first_frame_timeout: config.first_frame_timeout,
            handshakes_per_address: config.handshakes_per_address,
            send_queue: config.send_queue,
            send_queue_bytes: config.send_queue_bytes,
            channels: config.channels.clone(),
            events,
            cut_off,
            shared_ops: Arc::default(),
            metrics: TransportMetrics::new(),
            next_id: AtomicU64::new(1),
        })
    }

    pub(super) fn params(&self) -> Params {
        Params {
            cluster: self.cluster.clone(),
            keyring: self.keyring.clone(),
            me: self.me.borrow().clone(),
            cut_off: self.cut_off.clone(),
        }
    }
}

/// Dials `addr`, runs the handshake, and serves the connection until it closes.
pub(crate) async fn dial<M: Inbox>(shared: Arc<Shared<M>>, addr: SocketAddr) {
    let params = shared.params();
    let attempt = async {
        let stream = tokio::time::timeout(shared.dial_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        let mut stream = framed(stream);
        let (peer, _version, session) =
            handshake::dial(&mut stream, &params, shared.dial_timeout).await?;
        authenticated(&mut stream, shared.max_frame + OVERHEAD);
        Ok::<_, HandshakeError>((stream, peer, session))
    };
    match attempt.await {
        Ok((stream, peer, session)) => {
            let dialer = params.me.name;
            serve(shared, stream, session, peer, dialer, Some(addr)).await;
        }
        Err(e) => {
            metrics::handshake_failed(e.label());
            if e.is_refusal() {
                warn!(%addr, reason = %e, "handshake with {addr} failed: {e}");
            } else {
                debug!(%addr, "dial to {addr} failed: {e}");
            }
            let failed = TransportEvent::DialFailed { addr, error: e };
            let _ = shared.events.send(failed.into()).await;
        }
    }
}

/// Why a connection ended.
enum Close {
    /// The peer closed it.
    ByPeer,
    /// This node dropped it (replaced, partitioned, leaving).
    ByUs,
    /// The node is stopping.
    Stopped,
    /// Bad bytes or a socket error: worth a warning.
    Protocol(String),
}

impl Close {
    /// The reason as a label value of `ensemble_connections_closed_total`.
    fn label(&self) -> &'static str {
        match self {
            Close::ByPeer => "peer",
            Close::ByUs => "local",
            Close::Stopped => "stopped",
            Close::Protocol(_) => "error",
        }
    }

    /// A reset or broken pipe is the peer going away (a crash, or the other side dropping a
    /// duplicate connection), not bad input.
    fn from_io(what: &str, e: std::io::Error) -> Close {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Close::ByPeer,
            _ => Close::Protocol(format!("{what} error: {e}")),
        }
    }
}

/// The reading side of a connection once the handshake is done.
type Reader = Framed<OwnedReadHalf, LengthDelimitedCodec>;

/// Registers an established connection with the driver and moves frames until it closes.
pub(super) async fn serve<M: Inbox>(
    shared: Arc<Shared<M>>,
    stream: FramedStream,
    session: Session,
    peer: PeerInfo,
    dialer: String,
    dialed: Option<SocketAddr>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut reader, outbox, mut opener) = split(stream, session, &shared);
    let (lanes, mut rx) = Lanes::new(1 + shared.channels.len(), shared.send_queue);
    let name = peer.name.clone();
    let up = TransportEvent::ConnUp {
        conn: ConnHandle {
            id,
            dialer,
            lanes,
            outbox: outbox.clone(),
        },
        peer,
        dialed,
    };
    if shared.events.send(up.into()).await.is_err() {
        return;
    }
    let reason = loop {
        tokio::select! {
            frame = reader.next() => {
                if let Err(close) = deliver(&shared, &name, &mut opener, frame).await {
                    break close;
                }
            }
            () = outbox.nudged() => {
                if let Err(close) = bounded(outbox.flush()).await {
                    break close;
                }
            }
            out = rx.recv() => match out {
                Some(msg) => {
                    let write = outbox.write_queued(msg, || rx.try_recv());
                    if let Err(close) = bounded(write).await {
                        break close;
                    }
                }
                None => {
                    // Written out and half-closed. The peer may have sent messages before it
                    // saw that (on a duplicate connection both ends give up, for one): they
                    // are read and delivered until it closes too.
                    let _ = bounded(outbox.close()).await;
                    break drain(&shared, &name, &mut opener, &mut reader).await;
                }
            },
        }
    };
    match &reason {
        Close::Protocol(why) => warn!(peer = %name, "connection to {name} closed: {why}"),
        Close::ByPeer => debug!(peer = %name, "connection to {name} closed by the peer"),
        Close::ByUs | Close::Stopped => debug!(peer = %name, "connection to {name} closed here"),
    }
    metrics::connection_closed(reason.label());
    let down = TransportEvent::ConnDown { id, name };
    let _ = shared.events.send(down.into()).await;
}

/// Bounds a write by [`WRITE_TIMEOUT`]: a peer that stops reading (hung) must not hold this
/// task for ever. `Err` says why the connection ends.
async fn bounded(write: impl std::future::Future<Output = io::Result<()>>) -> Result<(), Close> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Close::from_io("write", e)),
        Err(_) => Err(Close::Protocol(format!(
            "write timed out after {WRITE_TIMEOUT:?}"
        ))),
    }
}

/// Splits an authenticated connection into its reading side (keeping what was already read
/// past the handshake), its shared write side, and the receiving direction of its session.
fn split<M>(
    stream: FramedStream,
    session: Session,
    shared: &Shared<M>,
) -> (Reader, Arc<Outbox>, Opener) {
    let parts = stream.into_parts();
    let (read, write) = parts.io.into_split();
    let mut read_parts = FramedParts::new::<Bytes>(read, parts.codec);
    read_parts.read_buf = parts.read_buf;
    let (sealer, opener) = session.into_halves();
    (
        Framed::from_parts(read_parts),
        Arc::new(Outbox::new(
            write,
            sealer,
            shared.shared_ops.clone(),
            shared.metrics.clone(),
        )),
        opener,
    )
}

/// Hands a frame read from the peer to the driver; `Err` says why the connection ends.
async fn deliver<M: Inbox>(
    shared: &Shared<M>,
    name: &str,
    opener: &mut Opener,
    frame: Option<io::Result<bytes::BytesMut>>,
) -> Result<(), Close> {
    if let Some(Ok(sealed)) = &frame {
        shared.metrics.received_frames.increment(1);
        (shared.metrics.received_bytes).increment(sealed.len() as u64 + 4);
    }
    match frame {
        Some(Ok(sealed)) => match open_frame(opener, sealed) {
            Ok(Frame::Message(msg)) => {
                let m = TransportEvent::Inbound {
                    from: name.to_string(),
                    msg,
                };
                shared
                    .events
                    .send(m.into())
                    .await
                    .map_err(|_| Close::Stopped)
            }
            Ok(_) => Err(Close::Protocol(
                "a handshake frame after the handshake".into(),
            )),
            Err(e) => Err(Close::Protocol(e)),
        },
        // Oversized frames end up here too.
        Some(Err(e)) => Err(Close::from_io("read", e)),
        None => Err(Close::ByPeer),
    }
}

/// After this side closed the connection: delivers what the peer still sends until it closes
/// its side too, for at most [`DRAIN_TIMEOUT`].
async fn drain<M: Inbox>(
    shared: &Shared<M>,
    name: &str,
    opener: &mut Opener,
    reader: &mut Reader,
) -> Close {
    let read_all = async {
        loop {
            match deliver(shared, name, opener, reader.next().await).await {
                Ok(()) => {}
                Err(Close::ByPeer) => return Close::ByUs,
                Err(close) => return close,
            }
        }
    };
    // A stopped node has nobody to deliver to.
    if shared.events.is_closed() {
        return Close::Stopped;
    }
    tokio::time::timeout(DRAIN_TIMEOUT, read_all)
        .await
        .unwrap_or(Close::ByUs)
}

/// Opens (decrypts and checks) and decodes one frame.
pub(crate) fn open_frame(
    opener: &mut Opener,
    mut sealed: bytes::BytesMut,
) -> Result<Frame, String> {
    let n = opener
        .open_in_place(&mut sealed)
        .map_err(|e| e.to_string())?;
    sealed.truncate(n);
    let plain = sealed.freeze();
    wire::decode_shared(&plain).map_err(|e| e.to_string())
}

/// The receiving ends of a connection's send queues, one per channel, taken in turn one frame
/// at a time: a channel with a long backlog delays a frame of another by one frame at most
/// (plus what the socket already holds).
struct Lanes {
    rx: Vec<mpsc::Receiver<Message>>,
    next: usize,
}

impl Lanes {
    fn new(n: usize, capacity: usize) -> (Vec<mpsc::Sender<Message>>, Lanes) {
        let (tx, rx) = (0..n).map(|_| mpsc::channel::<Message>(capacity)).unzip();
        (tx, Lanes { rx, next: 0 })
    }

    /// The next queued message, from the next lane in turn that has one.
    fn try_recv(&mut self) -> Option<Message> {
        let n = self.rx.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Ok(b) = self.rx[i].try_recv() {
                self.next = (i + 1) % n;
                return Some(b);
            }
        }
        None
    }

    /// Waits for the next message; None once every lane is closed and empty.
    async fn recv(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| {
            let n = self.rx.len();
            let mut closed = 0;
            for k in 0..n {
                let i = (self.next + k) % n;
                match self.rx[i].poll_recv(cx) {
                    std::task::Poll::Ready(Some(b)) => {
                        self.next = (i + 1) % n;
                        return std::task::Poll::Ready(Some(b));
                    }
                    std::task::Poll::Ready(None) => closed += 1,
                    std::task::Poll::Pending => {}
                }
            }
            if closed == n {
                std::task::Poll::Ready(None)
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use ensemble_proto::table::TableMsg;
    use futures::SinkExt;
    use tokio::net::TcpListener;

    fn ack(seq: u64) -> Message {
        Message::Table(TableMsg::Ack {
            table: "t".into(),
            seq,
        })
    }

    /// Messages the peer sent on a connection this node already gave up still arrive.
    #[tokio::test]
    async fn a_connection_closed_here_delivers_what_the_peer_sent_before_it_closed_too() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (ours, mut theirs) = (framed(ours.unwrap()), framed(theirs.unwrap().0));
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let (session, mut peer_session) = (Session::new(&k1, &k2), Session::new(&k2, &k1));
        let secret = Secret::new("a-long-shared-cluster-secret").unwrap();
        let config = crate::Config::new("a", addr, secret.clone());
        let me = PeerInfo {
            name: "a".into(),
            addr,
            incarnation: 1,
            instance: 1,
            role: None,
        };
        let (events, mut inbox) = mpsc::channel::<TransportEvent>(64);
        #[derive(Debug)]
        struct Nobody;
        impl CutOff for Nobody {
            fn is_cut_off(&self, _: &str) -> bool {
                false
            }
        }
        let shared = Shared::new(
            "c".into(),
            crate::keyring::KeyringCell::new(crate::Keyring::new(secret)),
            watch::channel(me.clone()).1,
            &config,
            events,
            Arc::new(Nobody),
        );
        let peer = PeerInfo {
            name: "b".into(),
            ..me
        };
        let task = tokio::spawn(serve(shared, ours, session, peer, "a".into(), None));
        let Some(TransportEvent::ConnUp { conn, .. }) = inbox.recv().await else {
            panic!("no ConnUp");
        };
        // This node gives the connection up (its queues close) before the peer's messages
        // arrive; the peer does not know yet.
        drop(conn);
        tokio::time::sleep(Duration::from_millis(50)).await;
        for seq in 0..3 {
            let frame = wire::encode(&Frame::Message(ack(seq)));
            theirs
                .send(Bytes::from(peer_session.seal(&frame)))
                .await
                .unwrap();
        }
        // The peer reads this node's close, then closes its side.
        assert!(theirs.next().await.is_none(), "this side half-closed");
        drop(theirs);
        let mut got = Vec::new();
        while let Some(m) = inbox.recv().await {
            match m {
                TransportEvent::Inbound { from, msg } => got.push((from, msg)),
                TransportEvent::ConnDown { .. } => break,
                _ => {}
            }
        }
        let want: Vec<_> = (0..3).map(|s| ("b".to_string(), ack(s))).collect();
        assert_eq!(got, want);
        task.await.unwrap();
    }
}
