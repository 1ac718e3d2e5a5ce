//! Threads (`std` only): how many threads each conv splits its work across.
//!
//! A conv's work is its jobs (one panel of output channels of one group of one image); a
//! contiguous range of jobs writes one contiguous slice of the output, so the jobs are cut
//! into as many ranges as there are threads and each range runs on its own thread with its
//! own slice. Each output element is computed by the same code whatever range it falls in,
//! so the results are the same bits for any thread count.

use core::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets the number of threads convs use from now on, in this process (at least 1; 1, the
/// default, runs everything on the calling thread).
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The number of threads convs use.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Below this many multiply-accumulates a conv runs on one thread: starting a thread costs
/// about as much as this much work.
pub(crate) const MIN_MACS_PER_THREAD: usize = 1 << 20;
