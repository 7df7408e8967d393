//! Frames reaching a connection's session: opened (ChaCha20-Poly1305, frame counter) and decoded as
//! the connection task does (ensemble::fuzzing::session).
#![no_main]

use ensemble_proto::fuzzing::alloc::Counting;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|bytes: &[u8]| {
    ensemble::fuzzing::session(bytes);
});
