//! The user-event handler's calls on peers' bytes (ensemble_proto::fuzzing::user_events).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble_proto::fuzzing::user_events(bytes);
});
