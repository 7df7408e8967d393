//! Tracker reads between clients and servers, and encoded local states (ensemble::fuzzing::tracker_read).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble::fuzzing::tracker_read(bytes);
});
