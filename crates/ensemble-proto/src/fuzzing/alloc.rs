//! An allocator that counts, per thread, the bytes in use and their peak, so a harness can
//! check that decoding `n` bytes never allocates more than a bound linear in `n`.
//!
//! A fuzz target or a test binary installs it with
//! `#[global_allocator] static A: ensemble_proto::fuzzing::alloc::Counting = Counting;`;
//! without it, [`peak_during`] measures nothing and the bound is not checked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes decoding may allocate per input byte. Postcard lets serde reserve a sequence's
/// claimed length only when the input holds at least that many bytes (else it grows the
/// vector as elements really arrive), so a claimed length costs at most one element per
/// remaining input byte: the largest decoded element (an `Op`, a `Record`, an `Announcement`:
/// under 100 bytes, for at least one input byte each) sets this factor, with room for a
/// vector's doubling and for a member's tag map (one B-tree node per member).
pub const PER_INPUT_BYTE: usize = 128;
/// Bytes decoding may allocate whatever the input (a few small boxes and maps).
pub const BASE: usize = 64 * 1024;

/// The most bytes decoding `len` input bytes may allocate at its peak.
pub fn bound(len: usize) -> usize {
    BASE + PER_INPUT_BYTE * len
}

/// The counting allocator: the system allocator, with per-thread counts.
pub struct Counting;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_USE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = IN_USE.try_with(|u| {
        let now = u.get().wrapping_add(n as isize);
        u.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = IN_USE.try_with(|u| u.set(u.get().wrapping_sub(n as isize)));
}

// SAFETY: every call goes to the system allocator unchanged; the counts only read sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as the new block beside the old one: a moving realloc holds both.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

/// Runs `f` and returns its result with the peak of the bytes this thread allocated during
/// it beyond what it held before (None when [`Counting`] is not the global allocator).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
    let start = IN_USE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get).saturating_sub(start).max(0) as usize;
    (out, INSTALLED.load(Ordering::Relaxed).then_some(peak))
}

/// Runs `f`, which decodes `len` bytes (`what` names it), and panics if its allocations
/// passed [`bound`]`(len)` at their peak.
pub fn bounded<T>(what: &str, len: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = peak_during(f);
    if let Some(peak) = peak {
        assert!(
            peak <= bound(len),
            "{what}: decoding {len} bytes allocated {peak} bytes at its peak (bound {})",
            bound(len)
        );
    }
    out
}
