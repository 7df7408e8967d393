//! Frames off the wire: `wire::decode` and `wire::decode_shared` of every frame kind
//! (ensemble_proto::fuzzing::frame).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble_proto::fuzzing::frame(bytes);
});
