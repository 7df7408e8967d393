//! Untrusted bytes at the decoders of the runtime crate: frames reaching a connection's session
//! (genuine, forged, altered, replayed, reordered, reflected), tracker rows read from the
//! replicated table, discovery files. Random and mutated inputs fed to the checks the fuzz
//! targets run (`ensemble::fuzzing`, fuzz/): no panic, and only genuine frames open.

use ensemble::fuzzing::{self, Case};
use ensemble_proto::fuzzing::seeds;
use ensemble_proto::wire;
use proptest::prelude::*;

fn frames() -> Vec<Vec<u8>> {
    seeds::frames()
        .into_iter()
        .map(|(_, f)| wire::encode(&f))
        .collect()
}

/// Every case on every frame kind, at several positions.
#[test]
fn every_case_on_every_frame_kind() {
    for frame in frames() {
        for case in Case::ALL {
            for at in [0, 1, 7, 100, u16::MAX] {
                fuzzing::session(&fuzzing::session_input(case, at, &frame));
            }
        }
        let sealed = fuzzing::sealed_first(&frame);
        fuzzing::session(&fuzzing::session_input(Case::Forged, 0, &sealed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes under every case: a forged frame never opens, a genuine one opens as its
    /// plaintext decodes.
    #[test]
    fn random_frames_open_only_when_genuine(
        case in 0u8..8,
        at in any::<u16>(),
        frame in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        fuzzing::session(&fuzzing::session_input(Case::ALL[usize::from(case)], at, &frame));
    }

    /// Valid frames with a byte changed, under every case.
    #[test]
    fn mutated_frames_open_only_when_genuine(
        case in 0u8..8,
        at in any::<u16>(),
        seed in any::<prop::sample::Index>(),
        change in any::<(usize, u8)>(),
    ) {
        let frames = frames();
        let mut frame = frames[seed.index(frames.len())].clone();
        let i = change.0 % frame.len();
        frame[i] = change.1;
        fuzzing::session(&fuzzing::session_input(Case::ALL[usize::from(case)], at, &frame));
    }

    /// Tracker rows: random bytes, and a row's encoding cut short or changed.
    #[test]
    fn tracker_rows_decode_or_fail_with_a_codec_error(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        change in any::<(usize, u8, usize)>(),
    ) {
        fuzzing::tracker_row(&bytes);
        let row = ensemble::NodeRow {
            module: ensemble::TRACKER_TABLE.into(),
            node: "n1".into(),
            status: ensemble::NodeStatus::Online,
            last_change_ms: 1_700_000_000_000,
            incarnation: 9,
        };
        let mut encoded = postcard::to_stdvec(&row).unwrap();
        let i = change.0 % encoded.len();
        encoded[i] = change.1;
        encoded.truncate(change.2 % (encoded.len() + 1));
        fuzzing::tracker_row(&encoded);
    }

    /// Tracker reads between clients and servers, and encoded local states: random bytes.
    #[test]
    fn tracker_reads_and_local_states_decode_or_fail(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        fuzzing::tracker_read(&bytes);
    }

    /// Discovery files: any text.
    #[test]
    fn discovery_files_give_their_words(text in "(#?[ \t]*[a-z0-9:.#\\[\\]]{0,12}[ \t\n]{0,3}){0,12}") {
        fuzzing::discovery_file(text.as_bytes());
    }
}
