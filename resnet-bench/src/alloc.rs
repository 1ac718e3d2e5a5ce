//! A counting global allocator: the system allocator, counting the allocations (of every
//! thread) and the bytes requested while counting is on. A program opts in with
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: resnet_bench::alloc::Counting = resnet_bench::alloc::Counting;
//! ```
//!
//! and then [`count`]s around what it checks. `resnet-bench` does so to report the allocations
//! of its timed forward passes; `tests/no_alloc.rs` to fail when there are any. Without the
//! opt-in, [`count`] counts nothing, which [`counter_works`] tells.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The system allocator, counting allocations (and bytes) while [`count`] runs.
#[derive(Debug)]
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn record(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only atomics, never the heap.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations and bytes requested (by any thread) while `f` runs. Not reentrant: one
/// `count` at a time.
pub fn count<R>(f: impl FnOnce() -> R) -> (R, Allocations) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    let counted = Allocations {
        count: ALLOCATIONS.load(Ordering::SeqCst),
        bytes: BYTES.load(Ordering::SeqCst),
    };
    (r, counted)
}

/// What [`count`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allocations {
    /// Calls of `alloc`, `alloc_zeroed` and `realloc`.
    pub count: u64,
    /// Bytes they asked for.
    pub bytes: u64,
}

/// Whether [`Counting`] is this program's global allocator and counts: it must see exactly
/// one allocation in a deliberate `Box::new`. Without this check a counter that counts
/// nothing would pass every "no allocation" check.
pub fn counter_works() -> bool {
    let ((), seen) = count(|| drop(std::hint::black_box(Box::new(1u64))));
    seen.count == 1
}
