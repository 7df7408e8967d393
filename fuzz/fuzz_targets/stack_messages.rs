//! Sequences of frames from peers fed to a node's protocols (ensemble_proto::fuzzing::stack).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble_proto::fuzzing::stack(bytes);
});
