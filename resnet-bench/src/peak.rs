//! The machine's FP32 FMA peak, the yardstick for "% of peak": given on the command line
//! (GFLOP/s per core), or measured now by `peak.c` (a copy of the project's probe: 12
//! independent FMA chains per thread, AVX2 and AVX-512, at 1 thread and at every CPU),
//! built with gcc. Measured, not taken from a datasheet: on a shared virtual machine the
//! clock and the other tenants decide what a core delivers.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The probe's source.
const PEAK_C: &str = include_str!("../peak.c");

/// Iterations per thread: a quarter of the probe's default, about 0.1 s per measurement at
/// 3 GHz, still thousands of times the loop's start-up cost.
const ITERS: u64 = 50_000_000;

/// FMA peak in GFLOP/s (2 FLOPs per FMA lane).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peak {
    /// `"given"` (`--peak`) or `"measured by peak.c"`.
    pub source: String,
    /// GFLOP/s of one core.
    pub per_core: f64,
    /// Measured GFLOP/s with every CPU busy, and how many CPUs that was (measured only).
    pub all_cores: Option<(usize, f64)>,
    /// The probe's own report (measured only).
    pub report: Option<String>,
}

impl Peak {
    /// A peak given per core.
    pub fn given(per_core: f64) -> Peak {
        Peak {
            source: "given (--peak)".into(),
            per_core,
            all_cores: None,
            report: None,
        }
    }

    /// The peak available to `threads` threads: measured at that count if it was, otherwise
    /// `threads` times one core's.
    pub fn for_threads(&self, threads: usize) -> f64 {
        match self.all_cores {
            Some((n, total)) if n == threads => total,
            _ => self.per_core * threads as f64,
        }
    }

    /// Builds `peak.c` with gcc in a temporary directory and runs it.
    pub fn measure() -> Result<Peak> {
        let dir = std::env::temp_dir().join(format!("resnet-bench-peak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let result = build_and_run(&dir);
        // Best effort: a leftover temporary directory is harmless.
        let _ = std::fs::remove_dir_all(&dir);
        let report = result?;
        parse(&report).with_context(|| format!("cannot read peak.c's report:\n{report}"))
    }
}

fn build_and_run(dir: &Path) -> Result<String> {
    let source = dir.join("peak.c");
    let binary = dir.join("peak");
    std::fs::write(&source, PEAK_C).with_context(|| format!("cannot write {}", source.display()))?;
    let built = Command::new("gcc")
        .args(["-O3", "-march=native", "-fopenmp", &format!("-DITERS={ITERS}L")])
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .context("cannot run gcc (install it, or pass --peak GFLOPS per core, or --no-peak)")?;
    if !built.status.success() {
        bail!(
            "gcc could not build peak.c (pass --peak GFLOPS per core, or --no-peak):\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    let ran = Command::new(&binary).output().context("cannot run peak")?;
    if !ran.status.success() {
        bail!("peak failed: {}", String::from_utf8_lossy(&ran.stderr));
    }
    Ok(String::from_utf8_lossy(&ran.stdout).into_owned())
}

/// Reads the best GFLOP/s per thread count (over AVX2 and AVX-512) from lines like
/// `AVX-512  threads=1  best GFLOP/s =   150.0  (150.0 per thread)`.
fn parse(report: &str) -> Result<Peak> {
    let mut best: Vec<(usize, f64)> = Vec::new();
    for line in report.lines() {
        let Some(threads) = field(line, "threads=") else {
            continue;
        };
        let Some(gflops) = line
            .split_once("GFLOP/s =")
            .and_then(|(_, r)| r.split_whitespace().next())
        else {
            continue;
        };
        let threads: usize = threads.parse().context("thread count")?;
        let gflops: f64 = gflops.parse().context("GFLOP/s")?;
        match best.iter_mut().find(|(t, _)| *t == threads) {
            Some((_, g)) => *g = g.max(gflops),
            None => best.push((threads, gflops)),
        }
    }
    let Some(&(_, per_core)) = best.iter().find(|(t, _)| *t == 1) else {
        bail!("no single-thread result");
    };
    let all_cores = best
        .iter()
        .copied()
        .filter(|&(t, _)| t > 1)
        .max_by_key(|&(t, _)| t);
    Ok(Peak {
        source: "measured now by peak.c".into(),
        per_core,
        all_cores,
        report: Some(report.trim_end().to_owned()),
    })
}

/// The word after `key` in `line`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_best_isa_per_thread_count() {
        let report = "procs=2  ITERS=50000000  accumulators=12\n\
            estimated clock (dependent int add chain, 1 thread): 3.00 GHz\n\
            AVX2     threads=1  best GFLOP/s =    95.1  (95.1 per thread)\n\
            AVX-512  threads=1  best GFLOP/s =   190.2  (190.2 per thread)\n\
            AVX2     threads=2  best GFLOP/s =   180.0  (90.0 per thread)\n\
            AVX-512  threads=2  best GFLOP/s =   370.5  (185.2 per thread)\n";
        let peak = parse(report).unwrap();
        assert_eq!(peak.per_core, 190.2);
        assert_eq!(peak.all_cores, Some((2, 370.5)));
        assert_eq!(peak.for_threads(2), 370.5);
        assert_eq!(peak.for_threads(3), 3.0 * 190.2);
        assert!(parse("nothing").is_err());
    }
}
