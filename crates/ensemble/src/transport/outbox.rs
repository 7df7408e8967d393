//! A connection's write side, shared by the connection task and the driver.
//!
//! A small message the driver sends while nothing is waiting to be written is sealed and
//! written to the socket by the driver itself (a non-blocking write): no wake-up of the
//! connection task, no thread hop, on the path of every synchronous table write and its ack.
//! Everything else goes through the connection's queues and is sealed and written by its task.
//! Bytes reach the socket only from one ordered buffer under one lock, so frames leave in the
//! order they were sealed, and the frame counter (the nonce) advances in that order too.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ensemble_proto::table::TableMsg;
use ensemble_proto::wire::{self, Frame, Message};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use super::session::Sealer;
use super::shared_ops::{SharedOps, MIN_SHARED};
use crate::metrics::TransportMetrics;

/// Largest encoded frame the driver writes itself; larger ones are sealed by the
/// connection task, so writes to several peers are encrypted on several cores at once.
const DIRECT_MAX: usize = 2048;

/// Most queued messages the task seals in one turn.
const BATCH: usize = 256;

/// Sealed bytes the task lets wait before it writes them.
const WRITE_AHEAD: usize = 64 * 1024;

/// What [`Outbox::hold`] did with a message.
pub(crate) enum Hold {
    /// Sealed; `first` if no other frame was held since the last [`Outbox::write_held`].
    Held { first: bool },
    /// Not taken: it goes into the connection's queue.
    Refused(Message),
}

/// The write side of one connection.
pub(crate) struct Outbox {
    half: OwnedWriteHalf,
    state: Mutex<State>,
    /// Messages in the connection's queues not yet sealed into `pending`. The driver (the only
    /// sender) writes directly only when this is zero, so a queued message is never overtaken.
    queued: AtomicUsize,
    /// About how many bytes those messages take (`Message::approx_len`): the driver drops what
    /// would take it past the connection's byte limit.
    queued_bytes: AtomicUsize,
    /// Tells the connection task that `pending` holds bytes a non-blocking write did not take.
    nudge: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct State {
    sealer: Sealer,
    shared_ops: Arc<SharedOps>,
    /// Sealed, length-prefixed frames; `pending[written..]` is not on the socket yet.
    pending: Vec<u8>,
    written: usize,
    /// The driver sealed frames and will write them.
    held: bool,
    /// Frames and bytes sealed for sending.
    metrics: TransportMetrics,
}

impl Outbox {
    pub fn new(
        half: OwnedWriteHalf,
        sealer: Sealer,
        shared_ops: Arc<SharedOps>,
        metrics: TransportMetrics,
    ) -> Outbox {
        Outbox {
            half,
            state: Mutex::new(State {
                sealer,
                shared_ops,
                pending: Vec::new(),
                written: 0,
                held: false,
                metrics,
            }),
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            nudge: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Driver: seals a small message behind what is pending, if nothing is queued before it
    /// and the connection task is not writing; gives the message back otherwise (queue it).
    /// The frame is written by [`Outbox::write_held`] (or by the task, if it writes first).
    pub fn hold(&self, msg: Message) -> Hold {
        if self.queued.load(Ordering::Acquire) != 0 {
            return Hold::Refused(msg);
        }
        let Ok(mut state) = self.state.try_lock() else {
            return Hold::Refused(msg);
        };
        if let Some(large) = state.seal_small(msg) {
            return Hold::Refused(large);
        }
        Hold::Held {
            first: !std::mem::replace(&mut state.held, true),
        }
    }

    /// Driver: writes the frames [`Outbox::hold`] sealed, without waiting; what the socket
    /// does not take now (or a failed write) is left to the connection task.
    pub fn write_held(&self) {
        let mut state = self.lock();
        state.held = false;
        if !matches!(self.write_some(&mut state), Ok(true)) {
            self.nudge.notify_one();
        }
    }

    /// Driver: a message of about `bytes` is about to go into one of the connection's
    /// queues.
    pub fn queue(&self, bytes: usize) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Driver: the queue refused the message after [`Outbox::queue`].
    pub fn unqueue(&self, bytes: usize) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// About how many bytes the messages in the connection's queues take.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Nothing queued and nothing unwritten.
    pub fn is_idle(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0 && {
            let state = self.lock();
            state.written == state.pending.len()
        }
    }

    /// Task: seals `first` and up to [`BATCH`] more queued messages from `next`, and writes
    /// them. Small frames leave together in one write; once [`WRITE_AHEAD`] bytes are
    /// waiting they are written before the next is sealed, so the peer reads a backlog of
    /// large frames (a join's chunks) while the rest is still being sealed.
    pub async fn write_queued(
        &self,
        first: Message,
        mut next: impl FnMut() -> Option<Message>,
    ) -> io::Result<()> {
        let (mut msg, mut sealed) = (first, 0);
        loop {
            let (more, blocked) = {
                let mut state = self.lock();
                let bytes = msg.approx_len();
                state.seal(msg);
                self.queued.fetch_sub(1, Ordering::AcqRel);
                self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                sealed += 1;
                let more = if sealed <= BATCH { next() } else { None };
                let unwritten = state.pending.len() - state.written;
                let blocked = if more.is_some() && unwritten < WRITE_AHEAD {
                    false
                } else {
                    !self.write_some(&mut state)?
                };
                (more, blocked)
            };
            if blocked {
                self.flush().await?;
            }
            match more {
                Some(m) => msg = m,
                None => return Ok(()),
            }
        }
    }

    /// Task: resolves when the driver left bytes for it to write.
    pub async fn nudged(&self) {
        self.nudge.notified().await
    }

    /// Task: writes everything pending, waiting for the socket as needed.
    pub async fn flush(&self) -> io::Result<()> {
        loop {
            if self.write_some(&mut self.lock())? {
                return Ok(());
            }
            self.half.writable().await?;
        }
    }

    /// Task: writes what is pending, then closes the sending direction (the peer reads the
    /// end of the stream).
    pub async fn close(&self) -> io::Result<()> {
        self.flush().await?;
        socket2::SockRef::from(self.half.as_ref()).shutdown(std::net::Shutdown::Write)
    }

    /// Writes from `pending` until it is empty (true) or the socket would block (false).
    fn write_some(&self, state: &mut State) -> io::Result<bool> {
        while state.written < state.pending.len() {
            match self.half.try_write(&state.pending[state.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => state.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        state.pending.clear();
        state.written = 0;
        Ok(true)
    }
}

impl State {
    /// Appends `msg` as one sealed frame behind a 4-byte big-endian length.
    fn seal(&mut self, msg: Message) {
        let start = self.pending.len();
        self.pending.extend_from_slice(&[0; 4]);
        match msg {
            // A write going to several peers is encoded once for all of them.
            Message::Table(TableMsg::Ops {
                table,
                join_id,
                seq,
                ops,
            }) if ops.len() >= MIN_SHARED => {
                let encoded = self.shared_ops.encoded(&ops);
                wire::encode_ops_into(table, join_id, seq, &encoded, &mut self.pending);
            }
            msg => wire::encode_into(&Frame::Message(msg), &mut self.pending),
        }
        self.finish(start);
    }

    /// [`State::seal`] for a message of at most [`DIRECT_MAX`] encoded bytes; a larger one is
    /// given back untouched (its encoding stops at the limit).
    fn seal_small(&mut self, msg: Message) -> Option<Message> {
        let start = self.pending.len();
        self.pending.resize(start + 4 + DIRECT_MAX, 0);
        let frame = Frame::Message(msg);
        match wire::encode_within(&frame, &mut self.pending[start + 4..]) {
            Some(len) => {
                self.pending.truncate(start + 4 + len);
                self.finish(start);
                None
            }
            None => {
                self.pending.truncate(start);
                let Frame::Message(msg) = frame else {
                    unreachable!("built above")
                };
                Some(msg)
            }
        }
    }

    /// Seals the plaintext after the length at `start` and writes the length.
    fn finish(&mut self, start: usize) {
        self.sealer.seal_in_place(&mut self.pending, start + 4);
        let len = (self.pending.len() - start - 4) as u32;
        self.pending[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.metrics.sent_frames.increment(1);
        self.metrics.sent_bytes.increment(u64::from(len) + 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::session::Session;
    use bytes::Bytes;
    use ensemble_proto::messaging::DirectMsg;
    use futures::StreamExt;
    use std::sync::Arc;
    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

    /// Message `i`, of `len` payload bytes.
    fn cast(i: usize, len: usize) -> Message {
        Message::Direct(DirectMsg::Cast {
            name: i.to_string(),
            payload: Bytes::from(vec![7; len]),
            channel: None,
        })
    }

    /// Frames the driver writes itself, frames its task writes from the queues, and frames
    /// left over when the socket was full all arrive once, whole, and in the order sent.
    #[tokio::test]
    async fn direct_and_queued_frames_arrive_in_order_even_when_the_socket_is_full() {
        // Small socket buffers both ways, set before the connection exists (this also turns
        // off their autotuning, which may let a loopback socket hold tens of MiB): the socket
        // must fill for the test to prove anything.
        let buffer = 64 << 10;
        let listening = TcpSocket::new_v4().unwrap();
        listening.set_recv_buffer_size(buffer).unwrap();
        listening.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listening.listen(16).unwrap();
        let addr = listener.local_addr().unwrap();
        let dialling = TcpSocket::new_v4().unwrap();
        dialling.set_send_buffer_size(buffer).unwrap();
        let (ours, theirs) = tokio::join!(dialling.connect(addr), listener.accept());
        let (_read, write) = ours.unwrap().into_split();
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let (sealer, _) = Session::new(&k1, &k2).into_halves();
        let (_, mut opener) = Session::new(&k2, &k1).into_halves();
        let outbox = Arc::new(Outbox::new(
            write,
            sealer,
            Arc::default(),
            TransportMetrics::new(),
        ));
        let task = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                loop {
                    outbox.nudged().await;
                    outbox.flush().await.unwrap();
                }
            }
        });

        // The peer starts reading only after a while: the socket fills and frames stay pending.
        let n = 20_000;
        let reader = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let mut frames = FramedRead::new(theirs.unwrap().0, LengthDelimitedCodec::new());
            for want in 0..n {
                let mut sealed = frames.next().await.unwrap().unwrap();
                let len = opener.open_in_place(&mut sealed).unwrap();
                match wire::decode(&sealed[..len]).unwrap() {
                    Frame::Message(Message::Direct(DirectMsg::Cast { name, .. })) => {
                        assert_eq!(name, want.to_string())
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        let (mut left_over, mut i) = (false, 0);
        while i < n {
            if i % 70 == 3 && i + 4 <= n {
                // Queued messages, large and small (the large ones pass the write-ahead
                // limit); what the driver holds meanwhile waits behind them.
                let mut queue: std::collections::VecDeque<_> = (i..i + 4)
                    .map(|j| cast(j, if j % 2 == 1 { 2 * WRITE_AHEAD } else { 10 }))
                    .collect();
                queue.iter().for_each(|m| outbox.queue(m.approx_len()));
                let held = outbox.hold(cast(i + 4, 10));
                assert!(matches!(held, Hold::Refused(_)), "held behind a queued one");
                let first = queue.pop_front().unwrap();
                let write = outbox.write_queued(first, || queue.pop_front());
                tokio::time::timeout(std::time::Duration::from_secs(10), write)
                    .await
                    .expect("written once the peer reads")
                    .unwrap();
                i += 4;
                continue;
            }
            assert!(matches!(outbox.hold(cast(i, 1000)), Hold::Held { .. }));
            outbox.write_held();
            left_over |= !outbox.is_idle();
            i += 1;
        }
        assert!(
            left_over,
            "the socket never filled: the test proves nothing"
        );
        tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("every frame arrives")
            .unwrap();
        assert!(outbox.is_idle());
        task.abort();
    }

    #[test]
    fn large_messages_are_left_to_the_connection_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let ours = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (sealer, _) = Session::new(&[1; 32], &[2; 32]).into_halves();
            let outbox = Outbox::new(
                ours.into_split().1,
                sealer,
                Arc::default(),
                TransportMetrics::new(),
            );
            let large = outbox.hold(cast(0, DIRECT_MAX + 1));
            assert!(matches!(large, Hold::Refused(_)));
            let first = outbox.hold(cast(0, 10));
            assert!(matches!(first, Hold::Held { first: true }));
            let second = outbox.hold(cast(1, 10));
            assert!(matches!(second, Hold::Held { first: false }));
            assert!(!outbox.is_idle());
            outbox.write_held();
            assert!(outbox.is_idle());
        });
    }

    /// A write queued to two connections is encoded once for both, and each peer reads
    /// exactly the message sent to it (its own sequence number, the same writes).
    #[tokio::test]
    async fn a_write_sealed_for_two_peers_arrives_whole_at_each() {
        use ensemble_proto::table::{Op, Version};
        let shared = Arc::new(SharedOps::default());
        let ops: Arc<Vec<Op>> = Arc::new(
            (0..100u64)
                .map(|i| Op::Insert {
                    key: Bytes::from(format!("key{i}")),
                    value: Bytes::from(vec![i as u8; i as usize]),
                    version: Version { time: i, origin: 9 },
                })
                .collect(),
        );
        let write = |seq, ops: &Arc<Vec<Op>>| {
            Message::Table(TableMsg::Ops {
                table: "t".into(),
                join_id: 5,
                seq,
                ops: ops.clone(),
            })
        };
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        for (peer, seq) in [(0u8, 10u64), (1, 20)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let (sealer, _) = Session::new(&k1, &k2).into_halves();
            let (_, mut opener) = Session::new(&k2, &k1).into_halves();
            let outbox = Outbox::new(
                ours.unwrap().into_split().1,
                sealer,
                shared.clone(),
                TransportMetrics::new(),
            );
            // The same writes twice (the second time from the shared encoding), then others.
            let other = Arc::new(ops[..50].to_vec());
            let mut queue: std::collections::VecDeque<_> =
                [write(seq + 1, &ops), write(seq + 2, &other)].into();
            let sent = [write(seq, &ops), queue[0].clone(), queue[1].clone()];
            sent.iter().for_each(|m| outbox.queue(m.approx_len()));
            outbox
                .write_queued(write(seq, &ops), || queue.pop_front())
                .await
                .unwrap();
            let mut frames = FramedRead::new(theirs.unwrap().0, LengthDelimitedCodec::new());
            for want in sent {
                let mut sealed = frames.next().await.unwrap().unwrap();
                let len = opener.open_in_place(&mut sealed).unwrap();
                let got = wire::decode(&sealed[..len]).unwrap();
                assert_eq!(got, Frame::Message(want), "peer {peer}");
            }
        }
    }
}
