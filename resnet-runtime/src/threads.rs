//! Threads (`std` only): how many threads each conv splits its work across, and the pool
//! that runs them.
//!
//! A conv's work is its jobs (one panel of output channels of one group of one image); a
//! contiguous range of jobs writes one contiguous slice of the output, so the jobs are cut
//! into as many ranges as there are threads and each range runs on its own thread with its
//! own slice. Each output element is computed by the same code whatever range it falls in,
//! so the results are the same bits for any thread count.
//!
//! The workers are started once and then wait on a condition variable, so that a forward
//! pass allocates nothing and pays no thread start per layer. A call hands them a borrowed
//! task and does not return before every part has finished, as `std::thread::scope` does.
//! If another thread is using the pool at that moment, the call runs all its parts itself:
//! same bits, no waiting.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets the number of threads convs use from now on, in this process (at least 1; 1, the
/// default, runs everything on the calling thread). The workers start on first use.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The number of threads convs use.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Below this many multiply-accumulates a conv runs on one thread: handing work to another
/// thread costs about as much as this much work.
pub(crate) const MIN_MACS_PER_THREAD: usize = 1 << 20;

/// Below this many elements read per thread a pooling or classifier layer runs on one thread:
/// they do about one operation per element read, and are bound by memory rather than by
/// arithmetic.
pub(crate) const MIN_ELEMENTS_PER_THREAD: usize = 1 << 16;

/// Cuts jobs `0..total` into `threads` contiguous ranges of (nearly) equal size and runs
/// `run(jobs, slice)` for each as the parts of one [`run_parts`] call, where `slice` is
/// `out[output(jobs)]`. `output` must map disjoint job ranges to disjoint ranges of `out`
/// (checked to lie inside it): each part then owns its slice.
pub(crate) fn run_job_ranges(
    total: usize,
    threads: usize,
    out: &mut [f32],
    output: &(dyn Fn(Range<usize>) -> Range<usize> + Sync),
    run: &(dyn Fn(Range<usize>, &mut [f32]) + Sync),
) {
    /// The output buffer, shared by the parts; each part writes only its own range of it.
    struct Out(*mut f32);
    // SAFETY: parts write disjoint ranges (the caller's contract on `output`), and
    // `run_parts` returns only when all are done, while `out` is still borrowed.
    unsafe impl Sync for Out {}
    impl Out {
        // A method, so that closures capture the whole `Out` (which is `Sync`), not its
        // pointer field (which is not).
        fn at(&self, offset: usize) -> *mut f32 {
            self.0.wrapping_add(offset)
        }
    }
    let base = Out(out.as_mut_ptr());
    let len = out.len();
    run_parts(threads, &|t| {
        let jobs = total * t / threads..total * (t + 1) / threads;
        let range = output(jobs.clone());
        assert!(range.start <= range.end && range.end <= len);
        // SAFETY: `range` lies within `out` (asserted), no other part's range overlaps it,
        // and `out` outlives the call (see `Out`).
        let mine = unsafe { core::slice::from_raw_parts_mut(base.at(range.start), range.len()) };
        run(jobs, mine);
    });
}

/// A task borrowed for the duration of one [`run_parts`] call.
#[derive(Clone, Copy)]
struct Task(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, and `run_parts` keeps it alive until every worker that
// received the pointer has finished with it.
unsafe impl Send for Task {}

struct State {
    /// Incremented for every task, so that a worker runs each task once.
    generation: u64,
    task: Option<Task>,
    /// Parts of the current task; worker `i` runs part `i` if `i < parts - 1`.
    parts: usize,
    /// Workers started so far.
    workers: usize,
}

struct Pool {
    state: Mutex<State>,
    /// `state.generation`, readable without the lock: what spinning workers watch.
    generation: AtomicU64,
    /// Parts handed to workers that have not finished.
    pending: AtomicUsize,
    /// Whether a part panicked (re-raised on the calling thread).
    panicked: AtomicBool,
    /// Workers waiting on `work` (changed under the state's lock), so that a caller makes
    /// the wake-up system call only when one sleeps.
    sleepers: AtomicUsize,
    /// Whether the caller waits on `done` (set under the state's lock), likewise.
    caller_sleeps: AtomicBool,
    work: Condvar,
    done: Condvar,
    /// Held by the one caller using the pool.
    busy: Mutex<()>,
}

/// Stack of each worker thread: a Winograd call keeps its scratch
/// ([`crate::winograd::SCRATCH_BYTES`], 1 MiB) on the stack, half of Rust's default 2 MiB;
/// 3 MiB more leaves the rest of a call as much room as a default thread has.
const WORKER_STACK: usize = crate::winograd::SCRATCH_BYTES + (3 << 20);

/// How long a worker polls for the next task, and the caller for the workers' parts, before
/// sleeping on a condition variable. The next conv of a forward usually comes sooner, and a
/// wake-up through the kernel costs tens of microseconds.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Polls `ready` until it holds or [`SPIN`] has passed; returns whether it holds.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            core::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return ready();
        }
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            generation: 0,
            task: None,
            parts: 0,
            workers: 0,
        }),
        generation: AtomicU64::new(0),
        pending: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        sleepers: AtomicUsize::new(0),
        caller_sleeps: AtomicBool::new(false),
        work: Condvar::new(),
        done: Condvar::new(),
        busy: Mutex::new(()),
    })
}

/// Kernel code does not panic in release builds; if a part ever did, the state is still
/// consistent (it is only written under the lock), so a poisoned lock is simply taken.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Worker `index`, started while the pool's state was at generation `seen`: it runs its part
/// of every later task. (Reading the generation itself when it starts would race with the
/// task that caused it to be started, published before the new thread gets the lock.)
fn worker(pool: &'static Pool, index: usize, mut seen: u64) {
    loop {
        spin_until(|| pool.generation.load(Ordering::Acquire) != seen);
        let mut st = lock(&pool.state);
        if st.generation == seen {
            pool.sleepers.fetch_add(1, Ordering::SeqCst);
            while st.generation == seen {
                st = pool.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            pool.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        seen = st.generation;
        let (task, parts) = (st.task, st.parts);
        drop(st);
        let Some(task) = task.filter(|_| index + 1 < parts) else {
            continue;
        };
        // SAFETY: `run_parts` published this pointer and waits for `pending` to reach zero,
        // which needs this worker's decrement below, before the task goes out of scope.
        let f = unsafe { &*task.0 };
        let ok = catch_unwind(AssertUnwindSafe(|| f(index))).is_ok();
        if !ok {
            pool.panicked.store(true, Ordering::Relaxed);
        }
        if pool.pending.fetch_sub(1, Ordering::SeqCst) == 1 && pool.caller_sleeps.load(Ordering::SeqCst) {
            // Under the lock, so that a caller that saw `pending > 0` under it is already
            // waiting on `done` (no lost wake-up). A caller that has not set `caller_sleeps`
            // yet sees `pending == 0` under the lock before it would wait.
            let _st = lock(&pool.state);
            pool.done.notify_all();
        }
    }
}

/// Calls `f(0)`, ..., `f(parts - 1)`, on the pool's workers and this thread, and returns when
/// all are done. Allocates only the first time it needs more workers than exist.
pub(crate) fn run_parts(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    let pool = pool();
    let _busy = match pool.busy.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        // Another thread is running a task: do this one here, part by part.
        Err(TryLockError::WouldBlock) => return (0..parts).for_each(f),
    };
    if parts <= 1 {
        return (0..parts).for_each(f);
    }
    {
        let mut st = lock(&pool.state);
        while st.workers < parts - 1 {
            let (index, seen) = (st.workers, st.generation);
            let spawned = std::thread::Builder::new()
                .name(format!("resnet-runtime-{index}"))
                .stack_size(WORKER_STACK)
                .spawn(move || worker(pool, index, seen));
            if spawned.is_err() {
                // No more threads to be had: run what would have been theirs here.
                drop(st);
                return (0..parts).for_each(f);
            }
            st.workers += 1;
        }
        // SAFETY (of the lifetime erasure): the pointer is cleared and every worker that
        // read it is done before this function returns, so `f` outlives every use.
        let erased: *const (dyn Fn(usize) + Sync + '_) = f;
        // SAFETY: only the lifetime changes; see above.
        let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { core::mem::transmute(erased) };
        st.task = Some(Task(erased));
        st.parts = parts;
        pool.pending.store(parts - 1, Ordering::Relaxed);
        pool.panicked.store(false, Ordering::Relaxed);
        st.generation += 1;
        pool.generation.store(st.generation, Ordering::Release);
    }
    // Outside the lock, so that a worker that saw the new generation while spinning does not
    // then wait for the lock through this system call; and only when a worker sleeps (a
    // worker counts itself in `sleepers` under the lock before it checks the generation, so
    // one that will wait is counted by now).
    if pool.sleepers.load(Ordering::SeqCst) > 0 {
        pool.work.notify_all();
    }
    let mine = catch_unwind(AssertUnwindSafe(|| f(parts - 1)));
    spin_until(|| pool.pending.load(Ordering::Acquire) == 0);
    let mut st = lock(&pool.state);
    if pool.pending.load(Ordering::SeqCst) > 0 {
        pool.caller_sleeps.store(true, Ordering::SeqCst);
        while pool.pending.load(Ordering::SeqCst) > 0 {
            st = pool.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        pool.caller_sleeps.store(false, Ordering::SeqCst);
    }
    st.task = None;
    let panicked = pool.panicked.load(Ordering::Relaxed);
    drop(st);
    if let Err(payload) = mine {
        std::panic::resume_unwind(payload);
    }
    assert!(!panicked, "a conv part panicked on a worker thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_workers_and_a_sleeping_caller_are_woken() {
        // Idle longer than `SPIN` before each task, so that the workers are asleep on `work`
        // when it comes; then a worker's part outlasts `SPIN`, so that the caller sleeps on
        // `done`. A lost wake-up hangs here.
        for round in 0..20 {
            std::thread::sleep(SPIN * 4);
            let counts: [AtomicUsize; 3] = Default::default();
            run_parts(3, &|i| {
                if i == round % 2 {
                    std::thread::sleep(SPIN * 4);
                }
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                "round {round}"
            );
        }
    }

    #[test]
    fn every_part_runs_once_and_concurrent_callers_get_their_own_results() {
        let counts: [AtomicUsize; 5] = Default::default();
        run_parts(5, &|i| {
            counts[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for _ in 0..200 {
                        let sum = AtomicUsize::new(0);
                        run_parts(3, &|i| {
                            sum.fetch_add(i + 10 * t, Ordering::Relaxed);
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), 3 + 30 * t);
                    }
                });
            }
        });
    }
}
