//! The checks the fuzz targets (`fuzz/` at the workspace root) and the property tests run on
//! the untrusted bytes this crate takes itself: frames opened by a connection's session,
//! tracker rows read from the replicated table, a discovery file. The frames' decoding and
//! the protocols behind it are checked by [`ensemble_proto::fuzzing`].
//!
//! Not an API: hidden from the docs, and may change with the fuzz targets. See
//! docs/FUZZING.md.

use bytes::{Bytes, BytesMut};
use ensemble_proto::wire;

use crate::api::table::{decode, encode};
use crate::api::tracker::{NodeRow, TRACKER_TABLE};
use crate::error::Error;
use crate::transport::conn::open_frame;
use crate::transport::session::{Session, OVERHEAD};

/// The session keys of the checks (any two distinct keys do).
const KEYS: ([u8; 32], [u8; 32]) = ([1; 32], [2; 32]);

/// What [`session`] does with the frame, by the input's first byte modulo 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The rest as a sealed frame, opened as the first frame of a connection (a forgery:
    /// it opens only if it is the genuine sealing of its plaintext).
    Forged,
    /// The rest sealed as the next frame, then opened: it must decode as the plaintext does.
    Genuine,
    /// Sealed, then one bit flipped (at the position the second and third bytes give).
    Flipped,
    /// Sealed, then cut short (to the length they give).
    Truncated,
    /// Sealed, then one byte longer.
    Extended,
    /// Sealed and opened, then opened again.
    Replayed,
    /// Sealed after another frame, and opened first.
    Reordered,
    /// Sealed, and opened by the sending direction (the frame reflected back to its sender).
    Reflected,
}

impl Case {
    /// Every case, in the order of their numbers.
    pub const ALL: [Case; 8] = [
        Case::Forged,
        Case::Genuine,
        Case::Flipped,
        Case::Truncated,
        Case::Extended,
        Case::Replayed,
        Case::Reordered,
        Case::Reflected,
    ];
}

/// A session input: `case`, the position `at`, then `frame`.
pub fn session_input(case: Case, at: u16, frame: &[u8]) -> Vec<u8> {
    let number = Case::ALL.iter().position(|c| *c == case).expect("listed") as u8;
    let mut out = vec![number];
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(frame);
    out
}

/// `bytes` as a frame reaching a connection's session (see [`Case`] for what the first byte
/// picks; the next two give a position): opened and decoded as the connection task does
/// (`transport::conn::open_frame`: decrypt, check the tag and the frame counter, then
/// `wire::decode_shared`). A genuine frame opens and decodes exactly as its plaintext does;
/// a forged, altered, replayed, reordered or reflected one never opens. Never panics.
pub fn session(bytes: &[u8]) {
    let [case, a, b, frame @ ..] = bytes else {
        return;
    };
    let case = Case::ALL[usize::from(*case % 8)];
    let at = usize::from(u16::from_le_bytes([*a, *b]));
    let (mut sealer, mut own_opener) = Session::new(&KEYS.0, &KEYS.1).into_halves();
    let (_, mut opener) = Session::new(&KEYS.1, &KEYS.0).into_halves();
    let seal = |sealer: &mut crate::transport::session::Sealer, plain: &[u8]| {
        let mut buf = plain.to_vec();
        sealer.seal_in_place(&mut buf, 0);
        assert_eq!(buf.len(), plain.len() + OVERHEAD);
        BytesMut::from(&buf[..])
    };
    // Either authentication fails, or the plaintext is not a frame: only a genuine frame's
    // plaintext reaches the decoder.
    let opens = |opener: &mut _, sealed: BytesMut| open_frame(opener, sealed).is_ok();
    match case {
        Case::Forged => {
            let mut copy = BytesMut::from(frame);
            if opener.open_in_place(&mut copy).is_ok() {
                let plain = &copy[..frame.len() - OVERHEAD];
                assert_eq!(
                    &seal(&mut sealer, plain)[..],
                    frame,
                    "a forged frame opened"
                );
            }
        }
        Case::Genuine => {
            let sealed = seal(&mut sealer, frame);
            let got = open_frame(&mut opener, sealed);
            let want = wire::decode_shared(&Bytes::copy_from_slice(frame));
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "opened frame differs from its plaintext"),
                (Err(_), Err(_)) => {}
                (g, w) => panic!("opened: {g:?}; plaintext decodes to {w:?}"),
            }
        }
        Case::Flipped => {
            let mut sealed = seal(&mut sealer, frame);
            let bit = at % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            assert!(opener.open_in_place(&mut sealed).is_err(), "a flipped bit");
        }
        Case::Truncated => {
            let mut sealed = seal(&mut sealer, frame);
            sealed.truncate(at % sealed.len());
            assert!(
                opener.open_in_place(&mut sealed).is_err(),
                "a truncated frame"
            );
        }
        Case::Extended => {
            let mut sealed = seal(&mut sealer, frame);
            sealed.extend_from_slice(&[a ^ b]);
            assert!(
                opener.open_in_place(&mut sealed).is_err(),
                "an extended frame"
            );
        }
        Case::Replayed => {
            let sealed = seal(&mut sealer, frame);
            assert!(opener.open_in_place(&mut sealed.clone()).is_ok());
            assert!(!opens(&mut opener, sealed), "a replayed frame");
        }
        Case::Reordered => {
            let first = seal(&mut sealer, &frame[..at.min(frame.len())]);
            let second = seal(&mut sealer, frame);
            assert!(!opens(&mut opener, second), "a frame ahead of its turn");
            drop(first);
        }
        Case::Reflected => {
            let sealed = seal(&mut sealer, frame);
            assert!(
                !opens(&mut own_opener, sealed),
                "a frame reflected to its sender"
            );
        }
    }
}

/// `bytes` as a tracker row's key and value, read from the replicated table `ensemble.tracker`
/// (which any member writes to) as `Table<String, NodeRow>` reads them: a codec error or the
/// row, which encodes back to bytes that decode to it again.
pub fn tracker_row(bytes: &[u8]) {
    fn check<T>(what: &str, bytes: &[u8])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        match decode::<T>(TRACKER_TABLE, what, bytes) {
            Ok(x) => {
                let again = encode(TRACKER_TABLE, what, &x).expect("a decoded row encodes");
                assert!(again.len() <= bytes.len());
                let back = decode::<T>(TRACKER_TABLE, what, &again).expect("decodes again");
                assert_eq!(back, x);
            }
            Err(Error::Codec { .. }) => {}
            Err(e) => panic!("not a codec error: {e}"),
        }
    }
    check::<String>("key", bytes);
    check::<NodeRow>("value", bytes);
}

/// `bytes` as a tracker read between a client and a server of a client-server topology (a
/// reserved named message any member may send), and as an encoded local state
/// (`LocalState::decode`): each decodes or fails without a panic, and what decodes encodes
/// back to bytes that decode to it again.
pub fn tracker_read(bytes: &[u8]) {
    use crate::api::manager::LocalState;
    use crate::api::tracker_relay::TrackerMsg;
    if let Ok(m) = postcard::from_bytes::<TrackerMsg<NodeRow>>(bytes) {
        let again = postcard::to_allocvec(&m).expect("a decoded message encodes");
        assert!(again.len() <= bytes.len());
        let back: TrackerMsg<NodeRow> = postcard::from_bytes(&again).expect("decodes again");
        assert_eq!(back, m);
    }
    match LocalState::decode(bytes) {
        Ok(s) => {
            let again = postcard::to_allocvec(&s).expect("a decoded state encodes");
            assert_eq!(LocalState::decode(&again).expect("decodes again"), s);
        }
        Err(Error::Codec { .. }) => {}
        Err(e) => panic!("not a codec error: {e}"),
    }
}

/// `bytes` as the text of a discovery file (`discovery::FileBackend`): the addresses found
/// are words of the text (none empty, none with whitespace), in the order they appear.
pub fn discovery_file(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let mut rest = text;
    for node in crate::discovery::file::parse(text) {
        let addr = node.addr.as_str();
        assert!(
            !addr.is_empty() && !addr.contains(char::is_whitespace),
            "{addr:?}"
        );
        let at = rest.find(addr).expect("the addresses appear in order");
        rest = &rest[at + addr.len()..];
        assert_eq!(node.name, None);
    }
}

/// `plain` sealed as the first frame of a connection under the keys [`session`] opens with
/// (a seed for its [`Case::Forged`] case: the genuine frame, which does open).
pub fn sealed_first(plain: &[u8]) -> Vec<u8> {
    let (mut sealer, _) = Session::new(&KEYS.0, &KEYS.1).into_halves();
    let mut buf = plain.to_vec();
    sealer.seal_in_place(&mut buf, 0);
    buf
}
