//! Table writes and join chunks off the wire, decoded as slices of their frame and applied to
//! stores (ensemble_proto::fuzzing::table_frame).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble_proto::fuzzing::table_frame(bytes);
});
