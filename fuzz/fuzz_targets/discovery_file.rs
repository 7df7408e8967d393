//! The text of a discovery file (ensemble::fuzzing::discovery_file).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble::fuzzing::discovery_file(bytes);
});
