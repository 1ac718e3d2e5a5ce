//! The timing protocol, shared with `tools/bench_ort.py` (which implements the same rules for
//! ONNX Runtime): `warmup` untimed forward passes, then either exactly `runs` timed ones, or,
//! without `runs`, timed ones until there are at least `min_runs` of them and they took at
//! least `min_time` seconds together (at most `max_runs`). The median is the middle run (the
//! mean of the two middle runs for an even count), as Python's `statistics.median`.

use std::time::{Duration, Instant};

use crate::alloc::count;
use crate::models::Net;

/// How many forward passes to run and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Protocol {
    /// Untimed runs first: they fault in the arena and the weights, and warm the caches.
    pub warmup: usize,
    /// Exactly this many timed runs, when given.
    pub runs: Option<usize>,
    /// Otherwise, at least this many...
    pub min_runs: usize,
    /// ...taking at least this long together...
    pub min_time: Duration,
    /// ...but never more than this many.
    pub max_runs: usize,
}

impl Protocol {
    /// Whether the timed runs so far are enough.
    fn done(&self, runs: usize, elapsed: Duration) -> bool {
        match self.runs {
            Some(n) => runs >= n,
            None => runs >= self.max_runs || (runs >= self.min_runs && elapsed >= self.min_time),
        }
    }
}

/// The timed runs of one row, in milliseconds, in the order they ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Times(pub Vec<f64>);

impl Times {
    /// The median run.
    pub fn median(&self) -> f64 {
        median(&self.0)
    }

    /// The fastest run.
    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// The median of `values` (the mean of the two middle ones for an even count; NaN if empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Times whole forward passes; also returns how many allocations the timed ones made (all
/// threads; counted only if [`crate::alloc::Counting`] is the global allocator).
pub fn time_forward(net: &mut dyn Net, protocol: &Protocol) -> (Times, u64) {
    for _ in 0..protocol.warmup {
        net.forward();
    }
    let mut times = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut allocations = 0;
    while !protocol.done(times.len(), elapsed) {
        let (took, seen) = count(|| {
            let start = Instant::now();
            net.forward();
            start.elapsed()
        });
        allocations += seen.count;
        elapsed += took;
        times.push(took.as_secs_f64() * 1e3);
    }
    (Times(times), allocations)
}

/// Per kernel call timings: `steps[i]` holds kernel call `i`'s time in each run, `total` each
/// run's whole forward pass (the sum of its steps, plus the hook calls, which are a clock read).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTimes {
    /// Milliseconds of each kernel call, per run.
    pub steps: Vec<Times>,
    /// Milliseconds of each whole run.
    pub total: Times,
    /// Allocations during the timed runs (see [`time_forward`]).
    pub allocations: u64,
}

/// Times each kernel call through `forward_with_hook`: the hook reads the clock after every
/// call, so a call's time is the time since the previous hook (or the start).
pub fn time_steps(net: &mut dyn Net, protocol: &Protocol) -> StepTimes {
    let n = net.steps().len();
    for _ in 0..protocol.warmup {
        net.forward();
    }
    let mut steps = vec![Vec::new(); n];
    let mut total = Vec::new();
    let mut elapsed = Duration::ZERO;
    // Reused across runs, so that nothing is allocated between two clock reads.
    let mut marks = vec![Duration::ZERO; n];
    let mut allocations = 0;
    while !protocol.done(total.len(), elapsed) {
        let (took, seen) = count(|| {
            let start = Instant::now();
            net.forward_with_hook(&mut |i| {
                if let Some(m) = marks.get_mut(i) {
                    *m = start.elapsed();
                }
            });
            start.elapsed()
        });
        allocations += seen.count;
        elapsed += took;
        total.push(took.as_secs_f64() * 1e3);
        let mut previous = Duration::ZERO;
        for (step, &mark) in steps.iter_mut().zip(&marks) {
            step.push(mark.saturating_sub(previous).as_secs_f64() * 1e3);
            previous = mark;
        }
    }
    StepTimes {
        steps: steps.into_iter().map(Times).collect(),
        total: Times(total),
        allocations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn fixed_and_adaptive_run_counts() {
        let fixed = Protocol {
            warmup: 0,
            runs: Some(3),
            min_runs: 10,
            min_time: Duration::from_secs(100),
            max_runs: 10,
        };
        assert!(!fixed.done(2, Duration::from_secs(1000)));
        assert!(fixed.done(3, Duration::ZERO));
        let adaptive = Protocol { runs: None, ..fixed };
        assert!(!adaptive.done(9, Duration::from_secs(1000)));
        assert!(adaptive.done(10, Duration::ZERO), "max_runs caps the count");
        let adaptive = Protocol {
            min_runs: 2,
            max_runs: 50,
            min_time: Duration::from_secs(1),
            ..adaptive
        };
        assert!(!adaptive.done(2, Duration::from_millis(999)));
        assert!(adaptive.done(2, Duration::from_secs(1)));
    }
}
