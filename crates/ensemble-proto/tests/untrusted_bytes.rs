//! Untrusted bytes at every decoder of ensemble-proto: random bytes, and valid frames of every
//! kind mutated (bits flipped, cut short, extended, bytes inserted and removed, lengths
//! changed), fed to the checks the fuzz targets run (`ensemble_proto::fuzzing`, fuzz/). No
//! panic, errors are errors, and decoding allocates at most `fuzzing::alloc::bound` of its
//! input's length (this binary counts allocations).

use ensemble_proto::fuzzing::{self, alloc, seeds};
use ensemble_proto::wire::{self, Frame, Message};
use proptest::prelude::*;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Lengths a mutation writes over a length prefix (or any other varint).
const LENGTHS: [u64; 9] = [
    0,
    1,
    127,
    128,
    1 << 16,
    1 << 32,
    (1 << 32) - 1,
    1 << 63,
    u64::MAX,
];

/// A change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flip bit `bit` of the byte at `at`.
    Flip { at: usize, bit: u8 },
    /// Cut the bytes at `at` and after.
    Truncate { at: usize },
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert a byte at `at`.
    Insert { at: usize, byte: u8 },
    /// Remove the byte at `at`.
    Remove { at: usize },
    /// Write the varint of `LENGTHS[len]` over the byte at `at` (a length prefix, if it was
    /// one, now claims another length).
    Length { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        (any::<usize>(), 0..LENGTHS.len()).prop_map(|(at, len)| Mutation::Length { at, len }),
    ]
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        match m {
            Mutation::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
            Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
            Mutation::Extend(more) => bytes.extend_from_slice(more),
            Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), *byte),
            Mutation::Remove { at } if n > 0 => {
                bytes.remove(at % n);
            }
            Mutation::Length { at, len } if n > 0 => {
                let at = at % n;
                bytes.splice(at..at + 1, varint(LENGTHS[*len]));
            }
            _ => {}
        }
    }
    bytes
}

fn encoded_seeds() -> Vec<Vec<u8>> {
    seeds::frames()
        .into_iter()
        .map(|(_, f)| wire::encode(&f))
        .collect()
}

fn table_seeds() -> Vec<Vec<u8>> {
    seeds::frames()
        .into_iter()
        .filter(|(_, f)| matches!(f, Frame::Message(Message::Table(_))))
        .map(|(_, f)| wire::encode(&f))
        .collect()
}

/// Every valid seed decodes to itself, and every frame kind has one.
#[test]
fn every_seed_frame_round_trips() {
    let frames = seeds::frames();
    assert!(frames.len() >= 60, "{} seed frames", frames.len());
    for (name, f) in frames {
        let bytes = wire::encode(&f);
        assert_eq!(fuzzing::frame(&bytes), Some(f), "{name}");
        fuzzing::table_frame(&bytes);
    }
    for (_, s) in seeds::stack_sequences() {
        fuzzing::stack(&s);
    }
    for (_, s) in seeds::event_sequences() {
        fuzzing::user_events(&s);
    }
}

/// A length prefix claiming 2^32 (or 2^64 - 1) elements or bytes allocates no more than the
/// bound for the few bytes that are there: nothing is reserved for what the input does not
/// hold. Every position of every seed frame is tried as a length prefix.
#[test]
fn huge_length_prefixes_allocate_nothing_for_what_is_not_there() {
    for bytes in encoded_seeds() {
        for at in 0..bytes.len() {
            for len in [1u64 << 32, u64::MAX, 1 << 20] {
                let mut b = bytes.clone();
                b.splice(at..at + 1, varint(len));
                fuzzing::frame(&b);
                fuzzing::table_frame(&b);
            }
        }
    }
    // A chunk of 2^32 records in eight bytes: an error, and well under a page allocated.
    let mut chunk = wire::encode(&Frame::Message(Message::Table(
        ensemble_proto::table::TableMsg::Chunk {
            table: "t".into(),
            join: 1,
            records: Vec::new(),
        },
    )));
    chunk.pop();
    chunk.extend(varint(1 << 32));
    let (result, peak) = alloc::peak_during(|| wire::decode(&chunk));
    assert!(result.is_err());
    assert!(peak.expect("counted") < 4096, "{peak:?} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes: a frame or an error, within the allocation bound.
    #[test]
    fn random_bytes_are_frames_or_errors(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::frame(&bytes);
        fuzzing::table_frame(&bytes);
    }

    /// Valid frames of every kind, mutated: a frame or an error, within the allocation
    /// bound; a table write or chunk that still decodes applies to stores cleanly.
    #[test]
    fn mutated_frames_are_frames_or_errors(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let seeds = encoded_seeds();
        let bytes = mutate(seeds[seed.index(seeds.len())].clone(), &mutations);
        fuzzing::frame(&bytes);
        fuzzing::table_frame(&bytes);
    }

    /// Table writes and chunks, mutated, applied to stores of both kinds.
    #[test]
    fn mutated_table_records_apply_cleanly(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let seeds = table_seeds();
        fuzzing::table_frame(&mutate(seeds[seed.index(seeds.len())].clone(), &mutations));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Sequences of frames from peers (a join, writes, anti-entropy, events, claims), mutated,
    /// fed to a node's protocols.
    #[test]
    fn mutated_frame_sequences_never_panic_a_node(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds::stack_sequences();
        fuzzing::stack(&mutate(seeds[seed.index(seeds.len())].1.clone(), &mutations));
    }

    /// The user-event handler's calls on mutated events, ids and summaries.
    #[test]
    fn mutated_user_events_never_panic_the_handler(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds::event_sequences();
        fuzzing::user_events(&mutate(seeds[seed.index(seeds.len())].1.clone(), &mutations));
    }

    /// Query requests, replies and summaries from random bytes and from mutated real ones.
    #[test]
    fn mutated_queries_never_panic_a_node(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        fuzzing::queries(&bytes);
        let request = ensemble_proto::query::QueryRequest {
            id: 7,
            origin: "b".into(),
            name: "uptime".into(),
            payload: bytes::Bytes::from(bytes.clone()),
            filter: ensemble_proto::query::QueryFilter {
                nodes: vec!["a".into()],
                tags: vec![("role".into(), "^web".into())],
            },
            timeout_ms: 1000,
            want_ack: true,
        };
        fuzzing::queries(&mutate(request.encode().to_vec(), &mutations));
        let reply = ensemble_proto::query::QueryMsg::Response { id: 1, payload: bytes.into() };
        fuzzing::queries(&mutate(reply.encode().to_vec(), &mutations));
    }
}
